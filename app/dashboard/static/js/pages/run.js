// One run: live progress and curves pushed by the job's event stream, its config, lineage, artifacts and
// worker log; cancel, tags and note. ?x=step|epoch|time and ?log=1 keep the chart view in the URL.

import { ApiError, get, post, qs } from "../api.js";
import { chartControls, MetricChart } from "../charts.js";
import { badge, bar, clear, confirmDialog, h, kv, path, toast } from "../dom.js";
import { watchJob } from "../events.js";
import * as fmt from "../fmt.js";
import { setQuery } from "../nav.js";
import { seriesOf } from "../runinfo.js";
import { artifacts, lineage, logPanel, tagsAndNote } from "../runparts.js";

const TERMINAL = ["succeeded", "failed", "cancelled"];
const MAX_POINTS = 5000;

export async function render(root, { params, query, allows }) {
  const id = params[0];
  let job;
  try {
    job = await get(path("v1", "jobs", id));
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      root.append(h("h1", null, "Run not found"), h("p", null, `There is no run ${id}. `, h("a", { href: "/" }, "All runs")));
      return null;
    }
    throw e;
  }
  document.title = `Run ${fmt.shortId(id)} · dlserve`;
  const view = { axis: ["step", "epoch", "time"].includes(query.get("x")) ? query.get("x") : "step", log: query.get("log") === "1" };
  const canTrain = allows("train");

  const head = h("div", { class: "page-head" });
  const progressBox = h("section", { class: "panel", "aria-label": "Progress" });
  const chartsBox = h("div", { class: "charts", id: "charts" });
  const log = logPanel(job);
  const [dataset, history] = await Promise.all([
    job.dataset_id ? get(path("v1", "datasets", job.dataset_id)).catch(() => null) : null,
    get(`${path("v1", "jobs", id, "metrics")}${qs({ max_points: MAX_POINTS })}`),
  ]);

  const series = seriesOf(history.items || []);
  const charts = {};
  const drawChart = (key) => {
    charts[key] = new MetricChart(chartsBox, key, [{ label: key, points: series[key] }], view);
  };
  const drawCharts = () => {
    for (const c of Object.values(charts)) c.destroy();
    for (const k of Object.keys(charts)) delete charts[k];
    clear(chartsBox);
    const keys = Object.keys(series).sort(byImportance);
    if (!keys.length) {
      chartsBox.append(h("p", { class: "muted", id: "no-metrics" }, TERMINAL.includes(job.status)
        ? "This run recorded no metrics." : "No metrics yet: they appear here as the run trains."));
    }
    for (const k of keys) drawChart(k);
  };
  const controls = chartControls(view, () => {
    setQuery({ x: view.axis === "step" ? "" : view.axis, log: view.log ? "1" : "" });
    for (const c of Object.values(charts)) c.set(view);
  });

  const cancel = h("button", { type: "button", class: "danger", id: "cancel",
    title: canTrain ? "stop this run" : "needs a key with the train scope" }, "Cancel run");
  cancel.addEventListener("click", async () => {
    if (!(await confirmDialog("Cancel this run?", `Run ${id} stops within a step; its last checkpoint is kept.`, "Cancel run"))) return;
    cancel.disabled = true;
    try {
      show(await post(path("v1", "jobs", id, "cancel")));
      toast("Cancel requested");
    } catch (e) {
      toast(e.message, true);
      cancel.disabled = false;
    }
  });

  const show = (j) => {
    job = { ...job, ...j };
    cancel.disabled = !canTrain || TERMINAL.includes(job.status) || job.cancel_requested;
    cancel.hidden = TERMINAL.includes(job.status);
    clear(head,
      h("div", null, h("h1", null, "Run ", h("span", { class: "mono" }, job.id), " ", badge(job.status)),
        h("div", { class: "sub" }, `${job.task} · created ${fmt.stamp(job.created_at)}`,
          job.dataset_id ? [" · dataset ", h("a", { href: `/${qs({ dataset_id: job.dataset_id })}` }, dataset ? dataset.name : fmt.shortId(job.dataset_id))] : null)),
      h("div", { class: "row" }, h("a", { class: "button", href: `/compare${qs({ ids: id })}` }, "Compare with…"), cancel));
    progressBox.replaceChildren(progressView(job));
  };

  show(job);
  root.append(head, progressBox,
    h("section", { class: "panel", "aria-label": "Curves" },
      h("div", { class: "row" }, h("h2", null, "Curves"), h("div", { class: "spacer" }), controls),
      h("p", { class: "muted small", id: "live", "aria-live": "polite" }, TERMINAL.includes(job.status) ? "" : "Live: new points appear as the worker reports them."),
      chartsBox),
    h("div", { class: "grid2" }, configPanel(job), h("div", null, lineage(job, dataset), tagsAndNote(job, canTrain))),
    h("div", { class: "grid2" }, h("div", { id: "artifacts" }), log.el));
  drawCharts();
  const artifactsSlot = root.querySelector("#artifacts");
  const drawArtifacts = () => artifacts(job, allows).then((el) => artifactsSlot.replaceChildren(el)).catch((e) => toast(e.message, true));
  drawArtifacts();

  if (TERMINAL.includes(job.status)) return null;
  await log.loaded;
  const stream = watchJob(id, {
    progress: show,
    metrics: (rows) => {
      const fresh = seriesOf(rows);
      for (const [key, points] of Object.entries(fresh)) {
        if (!series[key]) {
          series[key] = [];
          const empty = chartsBox.querySelector("#no-metrics");
          if (empty) empty.remove();
          drawChart(key);
        }
        charts[key].push(0, points);
      }
    },
    log: (part) => log.append(part),
    end: (j) => {
      show(j);
      const live = root.querySelector("#live");
      if (live) live.textContent = `The run ${j.status}.`;
      drawArtifacts();
    },
  }, { logOffset: log.offset });
  stream.know(history.items || []);
  return () => stream.close();
}

// loss first, then validation metrics, then the rest, alphabetically within each
function byImportance(a, b) {
  const rank = (k) => (k === "loss" ? 0 : k.startsWith("loss") || k.endsWith("loss") ? 1 : k.startsWith("val_") ? 2 : 3);
  return rank(a) - rank(b) || a.localeCompare(b);
}

function progressView(job) {
  const p = job.progress || {};
  const frac = p.fraction ?? (job.status === "succeeded" ? 1 : 0);
  return h("div", { class: "stack" },
    h("div", { class: "row" }, h("div", { class: "spacer" }, bar(frac, "run progress")),
      h("strong", { id: "progress-pct" }, `${Math.round(frac * 100)}%`)),
    kv([
      ["Phase", job.status === "running" && p.phase ? p.phase : undefined],
      ["Epoch", p.epochs ? `${fmt.num(p.epoch)} of ${fmt.num(p.epochs)}` : fmt.num(p.epoch)],
      ["Step", p.total ? `${fmt.num(p.step)} of ${fmt.num(p.total)}` : fmt.num(p.step)],
      ["Time left", job.status === "running" ? fmt.duration(p.eta_s) : undefined],
      ["Throughput", p.samples_per_s ? `${fmt.num(p.samples_per_s, 3)} samples/s` : undefined],
      ["Duration", fmt.duration(fmt.runSeconds(job))],
      ["Worker", job.worker || undefined],
      ["Attempts", job.attempts > 1 ? String(job.attempts) : undefined],
    ]),
    job.error ? h("p", { class: "alert", role: "alert" }, job.error) : null);
}

function configPanel(job) {
  const rows = Object.entries(job.config || {}).sort(([a], [b]) => a.localeCompare(b));
  return h("section", { class: "panel", "aria-label": "Config" }, h("h2", null, "Config"),
    rows.length ? h("table", null, h("tbody", null, rows.map(([k, v]) =>
      h("tr", null, h("td", { class: "mono muted" }, k), h("td", { class: "mono wrap" }, typeof v === "string" ? v : JSON.stringify(v))))))
      : h("p", { class: "muted" }, "defaults only"),
    job.register_as || job.alias ? kv([["Register as", job.register_as || undefined], ["Alias", job.alias || undefined]]) : null);
}
