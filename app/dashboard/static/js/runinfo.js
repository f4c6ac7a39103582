// What the pages share about runs and families: the family list (GET /v1/families, asked once per page),
// a run's best metric, and the links of its lineage.

import { get } from "./api.js";

export const TASKS = ["classification", "detection", "captioning", "translation", "recommendation", "fraud"];

let familiesPromise = null;
// {task: {formats, config fields, best_metric...}} from GET /v1/families; {} when the server has none.
export function families() {
  familiesPromise = familiesPromise || get("/v1/families").then(normalise).catch(() => ({}));
  return familiesPromise;
}

function normalise(body) {
  const list = Array.isArray(body) ? body : body.items || body.families || Object.entries(body).map(
    ([task, f]) => ({ task, ...f }));
  return Object.fromEntries(list.map((f) => [f.task || f.name, f]));
}

// {key, value} of the run's best metric: the API's best_metric when it has one, else a guess from the
// latest metrics (a validation metric before a training one).
export function bestOf(job) {
  const b = job.best_metric;
  if (b !== null && typeof b === "object") return typeof b.value === "number" ? { key: b.key || "", value: b.value } : null;
  if (typeof b === "number") return { key: job.best_metric_key || "", value: b };
  const m = job.metrics || {};
  const key = Object.keys(m).find((k) => k.startsWith("val_") && typeof m[k] === "number")
    || Object.keys(m).find((k) => typeof m[k] === "number");
  return key ? { key, value: m[key] } : null;
}

// The metric rows of a run as series per key: {key: [{step, epoch, t (ms), value}]} sorted by step.
export function seriesOf(rows, into = {}) {
  for (const r of rows) {
    const list = (into[r.key] = into[r.key] || []);
    list.push({ step: r.step, epoch: r.epoch, t: r.created_at ? Date.parse(r.created_at) : r.t ?? Date.now(), value: r.value });
  }
  return into;
}
