// Building the page. Every piece of data (names, tags, notes, labels, captions, errors) reaches the page
// as a text node or a property: nothing here parses HTML, so markup in the data stays text.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = String(v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "href" && /^\s*(javascript|data|vbscript):/i.test(String(v))) continue;
    else if (k === "value" || k === "checked" || k === "selected" || k === "indeterminate") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  add(el, children);
  return el;
}

export function add(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

export function clear(el, ...children) {
  el.replaceChildren();
  return add(el, children);
}

let fieldIds = 0;
export function uid(prefix = "f") {
  fieldIds += 1;
  return `${prefix}-${fieldIds}`;
}

// A labelled control: <label class="field"><span>Label</span>control<small help/><small error/></label>
export function field(label, control, help) {
  if (!control.id) control.id = uid();
  const error = h("span", { class: "error", role: "alert" });
  const helpEl = help ? h("span", { class: "help", id: `${control.id}-help` }, help) : null;
  if (helpEl) control.setAttribute("aria-describedby", helpEl.id);
  const wrap = h("div", { class: "field" }, h("label", { for: control.id }, label), control, helpEl, error);
  wrap.setError = (message) => {
    error.textContent = message || "";
    wrap.classList.toggle("invalid", Boolean(message));
    control.setAttribute("aria-invalid", message ? "true" : "false");
  };
  return wrap;
}

export function select(options, value, props = {}) {
  const el = h("select", props);
  for (const o of options) {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    el.append(h("option", { value: v, selected: String(v) === String(value ?? "") }, label));
  }
  return el;
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}

export function bar(fraction, label) {
  const fill = h("div");
  fill.style.width = `${Math.max(0, Math.min(1, fraction || 0)) * 100}%`;
  return h("div", { class: "bar", role: "progressbar", "aria-label": label || "progress", "aria-valuemin": 0,
    "aria-valuemax": 100, "aria-valuenow": Math.round((fraction || 0) * 100) }, fill);
}

export function kv(pairs) {
  const dl = h("dl", { class: "kv" });
  for (const [k, v] of pairs) {
    if (v === undefined) continue;
    dl.append(h("dt", null, k), h("dd", null, v ?? "—"));
  }
  return dl;
}

export function link(href, text, props = {}) {
  return h("a", { href, ...props }, text);
}

// Paths made of ids and names from the API: each segment is encoded, so a name can never leave its place.
export function path(...segments) {
  return "/" + segments.map((s) => encodeURIComponent(String(s))).join("/");
}

let toastBox = null;
export function toast(message, bad = false) {
  toastBox = toastBox || document.getElementById("toast");
  const item = h("div", { class: bad ? "bad" : "" }, message);
  toastBox.append(item);
  setTimeout(() => item.remove(), bad ? 8000 : 4000);
}

// A modal question; resolves true when confirmed. Esc or Cancel resolves false.
export function confirmDialog(title, body, okLabel = "Confirm") {
  return new Promise((resolve) => {
    const ok = h("button", { class: "primary", type: "submit", value: "ok" }, okLabel);
    const dlg = h("dialog", { "aria-labelledby": "dlg-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "dlg-title" }, title), h("p", null, body),
        h("div", { class: "row end" }, h("button", { type: "submit", value: "cancel" }, "Cancel"), ok)));
    dlg.addEventListener("close", () => { resolve(dlg.returnValue === "ok"); dlg.remove(); });
    document.body.append(dlg);
    dlg.showModal();
    ok.focus();
  });
}

export function emptyRow(cols, text) {
  return h("tr", null, h("td", { colspan: cols, class: "empty" }, text));
}
