// A family's config as a form, generated from GET /v1/families (each field's kind, default, help, choices
// and bounds), so the form stays true to the code's Config dataclass. Only values that differ from the
// defaults are sent; what the browser can check (numbers, bounds) is checked before submitting.

import { field, h } from "./dom.js";

const COMMON = ["epochs", "batch_size", "lr", "arch"];

// `code` spans of the docs as <code>, the rest as text
export function docText(doc) {
  return String(doc || "").split("`").map((part, i) => (i % 2 ? h("code", null, part) : part));
}

function shown(v) {
  if (v === null || v === undefined) return "";
  return Array.isArray(v) ? v.join(", ") : String(v);
}

function control(f) {
  const name = `config.${f.name}`;
  if (f.choices && f.choices.length) {
    const opts = f.nullable ? [["", f.default === null ? "auto" : `default (${shown(f.default)})`]] : [];
    for (const c of f.choices) opts.push([String(c), String(c)]);
    const sel = h("select", { name });
    for (const [v, label] of opts) sel.append(h("option", { value: v, selected: v === shown(f.default) || (v === "" && f.default === null) }, label));
    return sel;
  }
  if (f.kind === "boolean") {
    if (!f.nullable) return h("input", { type: "checkbox", name, checked: Boolean(f.default) });
    const sel = h("select", { name });
    sel.append(h("option", { value: "" }, "auto"), h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false"));
    return sel;
  }
  if (f.kind === "integer" || f.kind === "number") {
    return h("input", { type: "number", name, step: f.kind === "integer" ? "1" : "any", min: f.minimum ?? null, max: f.maximum ?? null,
      value: shown(f.default), placeholder: f.default === null ? "auto" : "", inputmode: f.kind === "integer" ? "numeric" : "decimal" });
  }
  return h("input", { type: "text", name, value: shown(f.default), placeholder: f.default === null ? "auto" : "",
    spellcheck: "false" });
}

function read(f, el) {
  if (el.type === "checkbox") return { value: el.checked };
  const raw = el.value.trim();
  if (raw === "") return { value: f.nullable ? null : f.kind === "array" ? [] : f.kind === "string" ? "" : undefined };
  if (f.kind === "boolean") return { value: raw === "true" };
  if (f.kind === "integer" || f.kind === "number") {
    const n = Number(raw);
    if (!Number.isFinite(n)) return { error: "must be a number" };
    if (f.kind === "integer" && !Number.isInteger(n)) return { error: "must be a whole number" };
    if (f.minimum !== null && f.minimum !== undefined && n < f.minimum) return { error: `must be at least ${f.minimum}` };
    if (f.maximum !== null && f.maximum !== undefined && n > f.maximum) return { error: `must be at most ${f.maximum}` };
    if (f.choices && f.choices.length && !f.choices.includes(n)) return { error: `must be one of ${f.choices.join(", ")}` };
    return { value: n };
  }
  if (f.kind === "array") return { value: raw.split(",").map((s) => s.trim()).filter(Boolean) };
  return { value: raw };
}

export function configForm(fields, values = {}) {
  const rows = {};
  const common = h("div", { class: "form-grid" });
  const rest = h("div", { class: "form-grid" });
  for (const f of fields) {
    const el = control(f);
    if (values[f.name] !== undefined) {
      if (el.type === "checkbox") el.checked = Boolean(values[f.name]);
      else el.value = shown(values[f.name]);
    }
    const help = [docText(f.doc), h("span", { class: "mono" }, ` (${f.type}; default ${f.default === null ? "none" : JSON.stringify(f.default)})`)];
    const wrap = field(f.name, el, help);
    rows[f.name] = { f, el, wrap };
    (COMMON.includes(f.name) ? common : rest).append(wrap);
  }
  const more = h("details", { class: "stack" }, h("summary", null, `More settings (${Object.keys(rows).length - common.children.length})`), rest);
  const el = h("div", { class: "stack" }, common, rest.children.length ? more : null);
  return {
    el,
    // {config, ok}: the values that differ from the defaults; errors are shown next to their fields
    collect() {
      const config = {};
      let ok = true;
      for (const { f, el: c, wrap } of Object.values(rows)) {
        const r = read(f, c);
        wrap.setError(r.error || "");
        if (r.error) { ok = false; more.open = more.open || !COMMON.includes(f.name); continue; }
        if (r.value !== undefined && JSON.stringify(r.value) !== JSON.stringify(f.default)) config[f.name] = r.value;
      }
      return { config, ok };
    },
    // an error the server named (field "config.lr"): shown there; false when no field has that name
    showError(name, message) {
      const row = rows[name];
      if (!row) return false;
      row.wrap.setError(message);
      if (!COMMON.includes(name)) more.open = true;
      row.el.focus();
      return true;
    },
    clearErrors() { for (const r of Object.values(rows)) r.wrap.setError(""); },
  };
}
