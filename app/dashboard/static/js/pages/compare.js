// Compare two to ten runs: their curves overlaid on shared axes (one chart per metric), the config keys
// where they differ highlighted, their final metrics side by side. The URL (?ids=a,b,c&x=&log=) is the
// link to share.

import { ApiError, get, qs } from "../api.js";
import { AXES, chartControls, colour, MetricChart } from "../charts.js";
import { badge, clear, field, h, path, toast } from "../dom.js";
import * as fmt from "../fmt.js";
import { setQuery } from "../nav.js";

const MAX_RUNS = 10;
const MAX_POINTS = 1000; // per run and metric: thinned by the server (keeping spikes), so ten long runs draw at once
const COMPARE_AXES = AXES.filter(([v]) => v !== "time"); // runs started at different times share steps, not clocks

export async function render(root, { query }) {
  document.title = "Compare runs · dlserve";
  const ids = [...new Set((query.get("ids") || "").split(",").map((s) => s.trim()).filter(Boolean))].slice(0, MAX_RUNS);
  const view = { axis: query.get("x") === "epoch" ? "epoch" : "step", log: query.get("log") === "1",
    all: query.get("all") === "1" };
  const keep = (next) => setQuery({ ids: next.join(","), x: view.axis === "step" ? "" : view.axis, log: view.log ? "1" : "",
    all: view.all ? "1" : "" });

  const addIn = h("input", { type: "text", placeholder: "run id", class: "mono", size: 34, list: "recent-runs" });
  const recent = h("datalist", { id: "recent-runs" });
  const addBtn = h("button", { type: "button" }, "Add run");
  const go = (next) => location.assign(`/compare${qs({ ids: next.join(","), x: view.axis === "step" ? "" : view.axis,
    log: view.log ? "1" : "" })}`);
  addBtn.addEventListener("click", () => {
    const id = addIn.value.trim();
    if (id && !ids.includes(id) && ids.length < MAX_RUNS) go([...ids, id]);
  });
  addIn.addEventListener("keydown", (e) => { if (e.key === "Enter") addBtn.click(); });
  const share = h("button", { type: "button", id: "share" }, "Copy link");
  share.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(location.href);
      toast("Link copied");
    } catch {
      toast(`Share this link: ${location.href}`);
    }
  });

  root.append(h("div", { class: "page-head" },
    h("div", null, h("h1", null, `Compare ${ids.length} run${ids.length === 1 ? "" : "s"}`),
      h("div", { class: "sub" }, "Curves on shared axes, config differences highlighted, final metrics side by side.")),
    h("div", { class: "row" }, field("Add a run", addIn), recent, addBtn, share)));
  if (ids.length < 2) {
    root.append(h("p", { class: "panel muted" }, "Pick two to ten runs: tick them on the ", h("a", { href: "/" }, "runs page"),
      ", or add run ids here."));
    if (!ids.length) return null;
  }

  let data;
  try {
    data = await load(ids);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404) throw e;
    root.append(h("p", { class: "alert", role: "alert" }, e.message));
    return null;
  }
  const runs = data.runs;
  // suggestions for "Add a run": the latest runs of the same family
  get(`/v1/jobs${qs({ task: runs[0]?.task, limit: 50 })}`).then((page) => recent.append(...page.items
    .filter((j) => !ids.includes(j.id)).map((j) => h("option", { value: j.id },
      `${j.task} · ${j.dataset_name || ""} · ${j.status} · ${fmt.when(j.created_at)}`)))).catch(() => {});

  const legend = h("div", { class: "legend-list", "aria-label": "runs" });
  runs.forEach((r, i) => {
    const sw = h("span", { class: "swatch" });
    sw.style.background = colour(i);
    legend.append(h("span", { class: "row" }, sw, h("a", { href: path("runs", r.id), class: "mono" }, fmt.shortId(r.id)),
      h("span", { class: "muted small" }, `${r.task} · ${r.dataset_name || fmt.shortId(r.dataset_id)}`), badge(r.status),
      h("button", { type: "button", class: "link", "aria-label": `remove run ${r.id}`,
        onclick: () => go(ids.filter((x) => x !== r.id)) }, "×")));
  });

  const chartsBox = h("div", { class: "charts" });
  const charts = [];
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.series)))].sort();
  const draw = () => {
    charts.splice(0).forEach((c) => c.destroy());
    for (const key of keys) {
      const lines = runs.map((r, i) => ({ label: fmt.shortId(r.id), colour: i, points: r.series[key] || [] }));
      charts.push(new MetricChart(chartsBox, key, lines, view));
    }
    if (!keys.length) chartsBox.append(h("p", { class: "muted" }, "These runs have no metrics yet."));
  };
  const controls = chartControls(view, () => { keep(ids); for (const c of charts) c.set(view); }, COMPARE_AXES);

  if (runs.length < 2) {
    root.append(h("section", { class: "panel", "aria-label": "Runs" }, legend));
    return null;
  }
  root.append(
    h("section", { class: "panel", "aria-label": "Curves" }, h("div", { class: "row" }, legend, h("div", { class: "spacer" }), controls), chartsBox),
    h("div", { class: "grid2" }, metricsTable(runs), configTable(runs, new Set(data.differing), view, () => keep(ids))),
  );
  draw();
  performance.mark("dlserve:compare-rendered"); // read by benchmarks/dashboard.py
  return () => charts.forEach((c) => c.destroy());
}

// The runs, their configs (with the keys whose values differ), final metrics and thinned curves, in one
// request; a single run (from "Compare with…" on its page) is only listed, waiting for others.
async function load(ids) {
  if (ids.length < 2) {
    const runs = await Promise.all(ids.map((id) => get(path("v1", "jobs", id))));
    return { runs: runs.map((r) => ({ ...r, final: r.metrics || {}, series: {} })), differing: [] };
  }
  const body = await get(`/v1/jobs/compare${qs({ ids: ids.join(","), max_points: MAX_POINTS })}`);
  const byId = Object.fromEntries(body.runs.map((r) => [r.id, { ...r, final: r.metrics || {}, series: {} }]));
  for (const s of body.series) {
    const run = byId[s.job_id];
    if (run) run.series[s.key] = s.step.map((step, i) => ({ step, epoch: s.epoch[i], value: s.value[i], t: null }));
  }
  return { runs: body.runs.map((r) => byId[r.id]), differing: body.differing_config_keys };
}

function heads(runs, first) {
  return h("thead", null, h("tr", null, h("th", { scope: "col" }, first), runs.map((r, i) => {
    const sw = h("span", { class: "swatch" });
    sw.style.background = colour(i);
    return h("th", { scope: "col", class: "num plain" }, sw, fmt.shortId(r.id));
  })));
}

function metricsTable(runs) {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.final || {})))].sort();
  const body = h("tbody");
  for (const k of keys) {
    const values = runs.map((r) => (r.final || {})[k]);
    const nums = values.filter((v) => typeof v === "number");
    const lowerBetter = /loss|rmse|mae|mse|error|perplexity/i.test(k);
    const best = nums.length > 1 ? (lowerBetter ? Math.min(...nums) : Math.max(...nums)) : null;
    body.append(h("tr", null, h("td", { class: "mono" }, k), values.map((v) =>
      h("td", { class: "num" }, v === best ? h("strong", { title: "best" }, fmt.num(v)) : fmt.num(v)))));
  }
  return h("section", { class: "panel", "aria-label": "Final metrics" }, h("h2", null, "Final metrics"),
    keys.length ? h("div", { class: "table-wrap" }, h("table", { id: "final-metrics" }, heads(runs, "metric"), body))
      : h("p", { class: "muted" }, "No final metrics yet."));
}

function configTable(runs, differing, view, onChange) {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.config || {})))].sort();
  const show = (v) => (v === undefined ? "—" : typeof v === "string" ? v : JSON.stringify(v));
  const body = h("tbody");
  const onlyDiff = h("input", { type: "checkbox", checked: !view.all });
  const fill = () => {
    clear(body);
    let shown = 0;
    for (const k of keys) {
      const values = runs.map((r) => show((r.config || {})[k]));
      const differs = differing.has(k);
      if (!differs && onlyDiff.checked) continue;
      shown += 1;
      body.append(h("tr", { class: differs ? "diff" : "" }, h("td", { class: "mono" }, k, differs ? h("span", { class: "muted small" }, " (differs)") : null),
        values.map((v) => h("td", { class: "mono wrap" }, v))));
    }
    if (!shown) body.append(h("tr", null, h("td", { colspan: runs.length + 1, class: "muted" }, "The configs are the same.")));
  };
  onlyDiff.addEventListener("change", () => { view.all = !onlyDiff.checked; onChange(); fill(); });
  fill();
  return h("section", { class: "panel", "aria-label": "Config differences" },
    h("div", { class: "row" }, h("h2", null, "Config"), h("div", { class: "spacer" }), h("label", { class: "check" }, onlyDiff, "only differences")),
    h("div", { class: "table-wrap" }, h("table", { id: "config-diff" }, heads(runs, "key"), body)));
}
