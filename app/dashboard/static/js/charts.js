// Metric curves with uPlot (vendored, MIT): one chart per metric key, one line per run. The x axis is the
// step, the epoch or the time since the run's first point; the y axis can be logarithmic. Points added
// while a run trains are drawn at the next animation frame, however many arrive.

import uPlot from "/static/vendor/uplot/uPlot.esm.js";
import { h } from "./dom.js";
import { duration, num } from "./fmt.js";

// seconds on a time axis: tenths while they are few (ticks half a second apart stay distinct)
const seconds = (v) => (Math.abs(v) < 10 ? `${Number(v.toFixed(1))}s` : duration(v));
const PALETTE = ["#3b6fd8", "#e0663a", "#2e9e6b", "#a65bd0", "#d4a017", "#1aa3b8", "#d0457a", "#7a8a2e", "#8a5a3c", "#5c6ac4"];
export const colour = (i) => PALETTE[i % PALETTE.length];
export const AXES = [["step", "Step"], ["epoch", "Epoch"], ["time", "Time"]];

let cssLoaded = false;
function loadCss() {
  if (cssLoaded) return;
  cssLoaded = true;
  document.head.append(h("link", { rel: "stylesheet", href: "/static/vendor/uplot/uPlot.min.css" }));
}

function themeColours() {
  const css = getComputedStyle(document.documentElement);
  return { text: css.getPropertyValue("--muted").trim() || "#666", grid: css.getPropertyValue("--border").trim() || "#ddd" };
}

// One line's points -> [xs, ys] for an axis; t0 is the run's first timestamp (time axis, in seconds).
function columns(points, axis, log) {
  const xs = [];
  const ys = [];
  const t0 = points.length ? points[0].t : 0;
  for (const p of points) {
    const x = axis === "epoch" ? p.epoch : axis === "time" ? (p.t - t0) / 1000 : p.step;
    if (x === null || x === undefined || !Number.isFinite(x)) continue;
    const y = log && !(p.value > 0) ? null : p.value;
    if (xs.length && x < xs[xs.length - 1]) continue; // out of order (a resumed run): uPlot needs x ascending
    if (xs.length && x === xs[xs.length - 1]) { ys[ys.length - 1] = y; continue; }
    xs.push(x);
    ys.push(y);
  }
  return [xs, ys];
}

export class MetricChart {
  // lines: [{label, points: [{step, epoch, t, value}]}]
  constructor(container, key, lines, { axis = "step", log = false } = {}) {
    loadCss();
    this.key = key;
    this.lines = lines;
    this.axis = axis;
    this.log = log;
    this.plotEl = h("div", { class: "plot", role: "img", "aria-label": `${key} by ${axis}` });
    this.countEl = h("span", { class: "muted small" });
    this.el = h("figure", { class: "chart", "data-key": key }, h("h3", null, h("span", null, key), this.countEl), this.plotEl);
    container.append(this.el);
    this.pending = false;
    this.resize = new ResizeObserver(() => this.u && this.u.setSize(this.size()));
    this.resize.observe(this.plotEl);
    this.build();
  }

  size() {
    return { width: Math.max(260, this.plotEl.clientWidth || 400), height: 220 };
  }

  data() {
    const tables = this.lines.map((l) => columns(l.points, this.axis, this.log));
    const count = tables.reduce((n, t) => n + t[0].length, 0);
    this.countEl.textContent = `${count.toLocaleString()} point${count === 1 ? "" : "s"}`;
    this.plotEl.dataset.points = String(count);
    if (tables.length === 1) return tables[0];
    return uPlot.join(tables.map(([xs, ys]) => [xs, ys]));
  }

  build() {
    if (this.u) this.u.destroy();
    const c = themeColours();
    const axis = { stroke: c.text, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid, width: 1 } };
    const xValues = this.axis === "time" ? (u, vals) => vals.map(seconds) : undefined;
    const opts = {
      ...this.size(),
      scales: { x: { time: false }, y: this.log ? { distr: 3 } : {} },
      axes: [{ ...axis, values: xValues, label: this.axis === "time" ? "time since start" : this.axis, labelSize: 18 },
        { ...axis, size: 60, values: (u, vals) => vals.map((v) => num(v, 3)) }],
      series: [{ label: this.axis, value: (u, v) => (v === null || v === undefined ? "—" : this.axis === "time" ? seconds(v) : num(v)) },
        // uPlot's default points: drawn where the line is sparse (a validation metric of a few epochs)
        ...this.lines.map((l, i) => ({ label: l.label, stroke: colour(l.colour ?? i), fill: undefined, width: 1.5,
          spanGaps: true, points: { size: 5, fill: colour(l.colour ?? i) }, value: (u, v) => num(v) }))],
      cursor: { drag: { x: true, y: false } },
    };
    this.u = new uPlot(opts, this.data(), this.plotEl);
  }

  // New points for line i (while a run trains): redrawn once per frame.
  push(i, points) {
    this.lines[i].points.push(...points);
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.u.setData(this.data());
    });
  }

  set({ axis, log }) {
    this.axis = axis ?? this.axis;
    this.log = log ?? this.log;
    this.plotEl.setAttribute("aria-label", `${this.key} by ${this.axis}`);
    this.build();
  }

  destroy() {
    this.resize.disconnect();
    if (this.u) this.u.destroy();
    this.el.remove();
  }
}

// The axis and log-scale controls shared by the run and compare pages.
export function chartControls(state, onChange, axes = AXES) {
  const axisSel = h("select", { "aria-label": "x axis" },
    axes.map(([v, label]) => h("option", { value: v, selected: state.axis === v }, label)));
  const logBox = h("input", { type: "checkbox", checked: state.log });
  axisSel.addEventListener("change", () => { state.axis = axisSel.value; onChange(); });
  logBox.addEventListener("change", () => { state.log = logBox.checked; onChange(); });
  return h("div", { class: "row" }, h("label", { class: "check" }, "x axis ", axisSel),
    h("label", { class: "check" }, logBox, "log scale"));
}
