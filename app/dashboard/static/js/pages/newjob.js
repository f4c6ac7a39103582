// A new training job: a family, a dataset (picked, or uploaded here with a progress bar), the family's
// config as a generated form, and where to register the result. ?task=&dataset= preselect. A refusal from
// the server is shown next to the field it names.

import { ApiError, get, post, qs } from "../api.js";
import { configForm } from "../configform.js";
import { datasetUpload } from "../datasetupload.js";
import { clear, field, h, path, select } from "../dom.js";
import * as fmt from "../fmt.js";
import { setQuery } from "../nav.js";
import { families } from "../runinfo.js";

export async function render(root, { query, allows }) {
  document.title = "New run · dlserve";
  const fams = await families();
  const tasks = Object.keys(fams);
  let task = tasks.includes(query.get("task")) ? query.get("task") : tasks[0];
  let datasetId = query.get("dataset") || "";
  const canTrain = allows("train");

  const taskSel = select(tasks.map((t) => [t, t]), task, { name: "task" });
  const dsSel = h("select", { name: "dataset_id" });
  const registerAs = h("input", { type: "text", name: "register_as", placeholder: "default: <task>-<run id>", maxlength: 128,
    pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]*" });
  const alias = h("input", { type: "text", name: "alias", placeholder: "e.g. production", maxlength: 64 });
  const fields = { task: field("Family", taskSel), dataset_id: field("Dataset", dsSel),
    register_as: field("Register as (model name)", registerAs, "The trained version is registered under this name."),
    alias: field("Alias", alias, "Point this alias at the new version when it is registered (optional).") };
  const configBox = h("div");
  const uploadBox = h("div");
  const formError = h("p", { class: "alert", role: "alert", hidden: true });
  const submit = h("button", { class: "primary", type: "submit", disabled: !canTrain,
    title: canTrain ? "" : "needs a key with the train scope" }, "Start training");
  let form = null;

  const loadDatasets = async () => {
    const page = await get(`/v1/datasets${qs({ task, limit: 200 })}`);
    clear(dsSel, h("option", { value: "" }, page.items.length ? "choose a dataset…" : "no datasets yet: upload one below"),
      page.items.map((d) => h("option", { value: d.id, selected: d.id === datasetId },
        `${d.name} · ${d.format} · ${fmt.bytes(d.size_bytes)} · ${fmt.when(d.created_at)}`)));
    if (datasetId && !page.items.some((d) => d.id === datasetId)) datasetId = "";
  };
  const drawFamily = async () => {
    const fam = fams[task] || { config: [], formats: [] };
    form = configForm([...(fam.config || []), ...(fam.platform_keys || [])]);  // devices: a distributed family's
    clear(configBox, form.el);
    clear(uploadBox, datasetUpload({ task, formats: fam.formats || [], canUpload: canTrain, onDone: async (ds) => {
      datasetId = ds.id;
      await loadDatasets();
      dsSel.value = ds.id;
      keep();
    } }));
    await loadDatasets();
  };
  const keep = () => setQuery({ task, dataset: dsSel.value || datasetId });
  taskSel.addEventListener("change", async () => { task = taskSel.value; datasetId = ""; keep(); await drawFamily(); });
  dsSel.addEventListener("change", () => { datasetId = dsSel.value; keep(); });

  const el = h("form", { method: "post", action: "/new", novalidate: true, "aria-label": "New training job" },
    h("section", { class: "panel stack" }, h("h2", null, "1. Family and data"),
      h("div", { class: "form-grid" }, fields.task, fields.dataset_id),
      h("details", { id: "upload-details" }, h("summary", null, "Upload a new dataset"), uploadBox)),
    h("section", { class: "panel stack" }, h("h2", null, "2. Config"),
      h("p", { class: "muted small" }, "Defaults are filled in; only what you change is sent."), configBox),
    h("section", { class: "panel stack" }, h("h2", null, "3. Register"), h("div", { class: "form-grid" }, fields.register_as, fields.alias)),
    formError,
    h("div", { class: "row end" }, h("a", { class: "button", href: "/" }, "Cancel"), submit));

  el.addEventListener("submit", async (e) => {
    e.preventDefault();
    formError.hidden = true;
    for (const f of Object.values(fields)) f.setError("");
    const { config, ok } = form.collect();
    if (!dsSel.value) { fields.dataset_id.setError("Choose a dataset, or upload one."); dsSel.focus(); return; }
    if (!ok) return;
    const body = { task, dataset_id: dsSel.value, config };
    if (registerAs.value.trim()) body.register_as = registerAs.value.trim();
    if (alias.value.trim()) body.alias = alias.value.trim();
    submit.disabled = true;
    try {
      const job = await post("/v1/jobs", body);
      location.assign(path("runs", job.id));
    } catch (err) {
      submit.disabled = !canTrain;
      if (!(err instanceof ApiError)) throw err;
      showProblem(err, form, fields, formError);
    }
  });

  root.append(h("div", { class: "page-head" }, h("div", null, h("h1", null, "New training run"),
    h("div", { class: "sub" }, "The job is queued for a worker; its page shows the curves as it trains."))), el);
  await drawFamily();
}

// The problem's field ("config.lr", "body.config.lr", "dataset_id", or each of `errors`) -> its control
function showProblem(err, form, fields, formError) {
  const named = err.errors.length ? err.errors.map((x) => [x.field, x.message]) : [[err.field, err.message]];
  let placed = false;
  for (const [where, message] of named) {
    const name = String(where || "").replace(/^body\./, "");
    if (name.startsWith("config.") && form.showError(name.slice(7).split(/[.[]/)[0], message || err.message)) placed = true;
    else if (fields[name]) { fields[name].setError(message || err.message); placed = true; }
  }
  if (!placed) {
    formError.textContent = err.message;
    formError.hidden = false;
  }
}
