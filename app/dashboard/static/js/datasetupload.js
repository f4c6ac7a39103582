// Uploading a dataset (POST /v1/datasets) with a progress bar: XMLHttpRequest reports the upload's
// progress, which fetch cannot. Errors (a bad record, an unknown format) show next to the field they name.

import { ApiError, upload } from "./api.js";
import { field, h, select } from "./dom.js";
import { bytes } from "./fmt.js";

export function datasetUpload({ task, formats = [], canUpload, onDone }) {
  const file = h("input", { type: "file", name: "file", disabled: !canUpload });
  const fmtSel = select([["", "guess from the file name"], ...formats.map((f) => [f.name, f.name])], "");
  const name = h("input", { type: "text", name: "name", maxlength: 200, placeholder: "the file name" });
  const go = h("button", { type: "button", disabled: !canUpload, title: canUpload ? "" : "needs a key with the train scope" }, "Upload");
  const progress = h("progress", { max: 100, value: 0, hidden: true, "aria-label": "upload progress" });
  const status = h("span", { class: "muted small", "aria-live": "polite" });
  const fields = { file: field("Dataset file", file, "A zip or tar archive, or a single file, in one of the family's formats."),
    format: field("Format", fmtSel), name: field("Name", name) };
  const formatHelp = h("ul", { class: "muted small" }, formats.map((f) => h("li", null, h("code", null, f.name), `: ${f.description}`)));

  go.addEventListener("click", async () => {
    for (const f of Object.values(fields)) f.setError("");
    const chosen = file.files && file.files[0];
    if (!chosen) { fields.file.setError("Choose a file to upload."); return; }
    const form = new FormData();
    form.append("task", task);
    if (fmtSel.value) form.append("format", fmtSel.value);
    if (name.value.trim()) form.append("name", name.value.trim());
    form.append("file", chosen);
    go.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    status.textContent = `Uploading ${bytes(chosen.size)}…`;
    try {
      const ds = await upload("/v1/datasets", form, (f) => {
        progress.value = Math.round(f * 100);
        status.textContent = f < 1 ? `Uploading… ${Math.round(f * 100)}%` : "Checking the records…";
      });
      progress.value = 100;
      await onDone(ds);
      status.textContent = `Uploaded “${ds.name}”.`;
    } catch (e) {
      const target = e instanceof ApiError && fields[String(e.field || "").replace(/^body\./, "")] || fields.file;
      target.setError(e.message);
      status.textContent = "";
      progress.hidden = true;
    } finally {
      go.disabled = !canUpload;
    }
  });
  return h("div", { class: "stack", id: "dataset-upload" }, h("div", { class: "form-grid" }, fields.file, fields.format, fields.name),
    formats.length ? h("details", null, h("summary", { class: "small" }, "Formats this family takes"), formatHelp) : null,
    h("div", { class: "row" }, go, h("div", { class: "spacer" }, progress), status));
}
