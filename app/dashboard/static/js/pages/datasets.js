// Datasets: the uploaded datasets by family (?task=, ?offset=), an upload with a progress bar, and from
// each one its runs and a new run on it.

import { del, get, qs } from "../api.js";
import { clear, confirmDialog, emptyRow, field, h, path, select, toast } from "../dom.js";
import { datasetUpload } from "../datasetupload.js";
import * as fmt from "../fmt.js";
import { setQuery } from "../nav.js";
import { families, TASKS } from "../runinfo.js";

const LIMIT = 50;

export async function render(root, { query, allows }) {
  document.title = "Datasets · dlserve";
  const fams = await families();
  const tasks = Object.keys(fams).length ? Object.keys(fams) : TASKS;
  const st = { task: query.get("task") || "", offset: Math.max(0, Number(query.get("offset")) || 0) };
  const canTrain = allows("train");
  const body = h("tbody");
  const summary = h("span", { class: "muted small" });
  const prev = h("button", { type: "button" }, "← Previous");
  const next = h("button", { type: "button" }, "Next →");
  const taskSel = select([["", "any"], ...tasks.map((t) => [t, t])], st.task);
  const uploadTask = select(tasks.map((t) => [t, t]), st.task || tasks[0]);
  const uploadBox = h("div");

  const load = async () => {
    setQuery({ task: st.task, offset: st.offset || "" });
    const page = await get(`/v1/datasets${qs({ task: st.task, limit: LIMIT, offset: st.offset })}`);
    clear(body, page.items.length ? page.items.map((d) => row(d, canTrain, load)) : emptyRow(7, "No datasets yet."));
    summary.textContent = `${page.total ? st.offset + 1 : 0}–${st.offset + page.items.length} of ${page.total}`;
    prev.disabled = st.offset === 0;
    next.disabled = st.offset + page.items.length >= page.total;
  };
  const drawUpload = () => clear(uploadBox, datasetUpload({ task: uploadTask.value, formats: (fams[uploadTask.value] || {}).formats || [],
    canUpload: canTrain, onDone: (ds) => { toast(`Dataset “${ds.name}” is ready`); load(); } }));
  taskSel.addEventListener("change", () => { st.task = taskSel.value; st.offset = 0; load(); });
  uploadTask.addEventListener("change", drawUpload);
  prev.addEventListener("click", () => { st.offset = Math.max(0, st.offset - LIMIT); load(); });
  next.addEventListener("click", () => { st.offset += LIMIT; load(); });

  root.append(h("div", { class: "page-head" }, h("div", null, h("h1", null, "Datasets"),
    h("div", { class: "sub" }, "Uploaded once, content-addressed; the same bytes again are the same dataset."))),
  h("section", { class: "panel stack", "aria-label": "Upload a dataset" }, h("h2", null, "Upload"),
    h("div", { class: "form-grid" }, field("Family", uploadTask)), uploadBox),
  h("section", { class: "panel" }, h("div", { class: "filters" }, field("Family", taskSel)),
    h("div", { class: "table-wrap" }, h("table", { "aria-label": "Datasets" }, h("thead", null, h("tr", null,
      ["Name", "Family", "Format", "Size", "Contents", "Uploaded", ""].map((t) => h("th", { scope: "col" }, t)))), body)),
    h("div", { class: "row" }, summary, h("div", { class: "spacer" }), prev, next)));
  drawUpload();
  await load();
}

function statsText(stats) {
  return Object.entries(stats || {}).filter(([, v]) => typeof v === "number" || typeof v === "string")
    .slice(0, 4).map(([k, v]) => `${k} ${typeof v === "number" ? fmt.num(v) : v}`).join(" · ");
}

function row(d, canTrain, reload) {
  const remove = h("button", { type: "button", class: "link", disabled: !canTrain, "aria-label": `delete dataset ${d.name}`,
    title: canTrain ? "" : "needs a key with the train scope" }, "Delete");
  remove.addEventListener("click", async () => {
    if (!(await confirmDialog("Delete this dataset?", `“${d.name}” and its files are removed; runs keep their records.`, "Delete"))) return;
    try {
      await del(path("v1", "datasets", d.id));
      toast("Dataset deleted");
      reload();
    } catch (e) {
      toast(e.message, true);
    }
  });
  return h("tr", null,
    h("td", { class: "wrap" }, h("strong", null, d.name), h("div", { class: "muted small mono" }, fmt.shortId(d.id))),
    h("td", null, d.task), h("td", null, d.format), h("td", { class: "num" }, fmt.bytes(d.size_bytes)),
    h("td", { class: "muted small wrap" }, statsText(d.stats)),
    h("td", { title: fmt.stamp(d.created_at) }, fmt.when(d.created_at)),
    h("td", null, h("div", { class: "row" }, h("a", { href: `/${qs({ dataset_id: d.id })}` }, "Runs"),
      h("a", { href: `/new${qs({ task: d.task, dataset: d.id })}` }, "Train"), remove)));
}
