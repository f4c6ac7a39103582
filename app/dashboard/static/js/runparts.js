// Pieces of the run page: tags and note (PATCH /v1/jobs/{id}), lineage, artifacts and the worker's log.

import { ApiError, get, patch, request } from "./api.js";
import { clear, field, h, kv, link, path, toast } from "./dom.js";
import * as fmt from "./fmt.js";

const NEEDS_TRAIN = "needs a key with the train scope";
const TAG = /^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$/; // the API's pattern (app/jobs/listing.py)

export function tagsAndNote(job, canEdit) {
  let tags = [...(job.tags || [])];
  const chips = h("div", { class: "row", "aria-label": "tags" });
  const input = h("input", { type: "text", placeholder: "add a tag, then Enter", maxlength: 64, disabled: !canEdit,
    title: canEdit ? "" : NEEDS_TRAIN });
  const note = h("textarea", { rows: 3, maxlength: 10000, disabled: !canEdit, title: canEdit ? "" : NEEDS_TRAIN });
  note.value = job.note || "";
  const save = h("button", { type: "button", disabled: !canEdit, title: canEdit ? "" : NEEDS_TRAIN }, "Save note");
  const tagField = field("Tags", input);
  const noteField = field("Note", note);

  const send = async (body) => {
    try {
      const out = await patch(path("v1", "jobs", job.id), body);
      tags = [...(out.tags || tags)];
      drawTags();
      return true;
    } catch (e) {
      const target = e instanceof ApiError && String(e.field || "").includes("note") ? noteField : tagField;
      target.setError(e.message);
      return false;
    }
  };
  const drawTags = () => {
    clear(chips, tags.length ? tags.map((t) => h("span", { class: "chip", title: t }, t,
      h("button", { type: "button", "aria-label": `remove tag ${t}`, disabled: !canEdit,
        onclick: () => send({ tags: tags.filter((x) => x !== t) }) }, "×")))
      : h("span", { class: "muted small" }, "no tags"));
  };
  input.addEventListener("keydown", async (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();
    const t = input.value.trim();
    if (!t || tags.includes(t)) { input.value = ""; return; }
    if (!TAG.test(t)) { tagField.setError("A tag is letters, digits, “.”, “_”, “:”, “+” or “-”, starting with a letter or digit."); return; }
    tagField.setError("");
    if (await send({ tags: [...tags, t] })) input.value = "";
  });
  save.addEventListener("click", async () => {
    noteField.setError("");
    save.disabled = true;
    if (await send({ note: note.value })) toast("Note saved");
    save.disabled = false;
  });
  drawTags();
  return h("section", { class: "panel stack", "aria-label": "Tags and note" }, h("h2", null, "Tags and note"), chips,
    tagField, noteField, h("div", { class: "row end" }, save));
}

export function lineage(job, dataset) {
  const mv = job.model_version;
  return h("section", { class: "panel", "aria-label": "Lineage" }, h("h2", null, "Lineage"),
    h("div", { class: "row" },
      dataset ? h("span", null, "Dataset ", link(`/?dataset_id=${encodeURIComponent(dataset.id)}`, dataset.name, { title: dataset.id }))
        : h("span", { class: "muted" }, job.dataset_id ? `Dataset ${fmt.shortId(job.dataset_id)}` : "no dataset"),
      h("span", { "aria-hidden": "true" }, "→"),
      h("span", null, "this run ", h("span", { class: "mono" }, fmt.shortId(job.id))),
      h("span", { "aria-hidden": "true" }, "→"),
      mv ? h("span", null, "model ", link(path("models", mv.name) + `?version=${mv.version}`, `${mv.name} v${mv.version}`))
        : h("span", { class: "muted" }, job.register_as ? `will register as ${job.register_as}` : "no version yet")),
    dataset ? kv([["Dataset format", dataset.format], ["Dataset size", fmt.bytes(dataset.size_bytes)]]) : null);
}

// The run's files (GET /v1/jobs/{id}/artifacts): the served ONNX graph for a read key, the PyTorch weights
// and checkpoint (pickles) for a key that may train.
export async function artifacts(job, allows) {
  const found = await get(path("v1", "jobs", job.id, "artifacts"));
  const rows = found.items.map((a) => {
    const may = allows(a.scope);
    return h("tr", null,
      h("td", null, may ? h("a", { href: path("v1", "jobs", job.id, "artifacts", a.name), download: "" }, a.name)
        : h("span", { title: `needs a key with the ${a.scope} scope` }, a.name)),
      h("td", { class: "muted small" }, a.kind), h("td", { class: "num" }, fmt.bytes(a.size_bytes)),
      h("td", { class: "muted small" }, may ? "" : `needs the ${a.scope} scope`));
  });
  return h("section", { class: "panel", "aria-label": "Artifacts" }, h("h2", null, "Artifacts"),
    rows.length ? h("table", { id: "artifacts-list" }, h("tbody", null, rows))
      : h("p", { class: "muted" }, "None yet: a run's checkpoint appears after its first epoch, its model when it is registered."));
}

// The worker's log for this job (GET .../log, plain text), then the lines the event stream brings ({offset,
// text, next_offset}); a reconnected stream starts again from the offset asked, so what is had is skipped.
export function logPanel(job) {
  const pre = h("pre", { class: "log", tabindex: "0", "aria-label": "worker log", "aria-live": "off" });
  const box = h("section", { class: "panel", "aria-label": "Log" }, h("h2", null, "Worker log"), pre);
  const bytes = new TextEncoder();
  const panel = { el: box, offset: 0 };
  const write = (text) => {
    if (!text) return;
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    pre.append(document.createTextNode(text));
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  };
  panel.loaded = request(path("v1", "jobs", job.id, "log"), { raw: true, headers: { Accept: "text/plain" } })
    .then(async (r) => {
      write(await r.text());
      panel.offset = Number(r.headers.get("X-Log-Offset")) || 0;
      if (!pre.textContent) pre.append(h("span", { class: "muted" }, "(nothing logged yet)"));
    })
    .catch((e) => write(`(the log could not be read: ${e.message})`));
  panel.append = (part) => {
    if (part.next_offset <= panel.offset) return;
    const skip = Math.max(0, panel.offset - part.offset);
    const empty = pre.querySelector("span.muted");
    if (empty) empty.remove();
    write(skip ? new TextDecoder().decode(bytes.encode(part.text).slice(skip)) : part.text);
    panel.offset = part.next_offset;
  };
  return panel;
}
