// Runs: one page of the jobs table, sorted, filtered and paged by the server (GET /v1/jobs), with the
// whole view in the query string. Ticking runs offers to compare them.

import { get, qs } from "../api.js";
import { badge, bar, clear, emptyRow, field, h, path, select } from "../dom.js";
import * as fmt from "../fmt.js";
import { debounce, setQuery } from "../nav.js";
import { bestOf, TASKS } from "../runinfo.js";

const STATUSES = ["", "queued", "running", "succeeded", "failed", "cancelled"];
const SIZES = [25, 50, 100, 200];
// [sort key of GET /v1/jobs, heading, cell class]
const COLUMNS = [
  ["id", "Run"], ["task", "Family"], ["dataset_name", "Dataset"], ["status", "Status"], ["progress", "Progress"],
  ["best_metric", "Best metric", "num"], ["duration_s", "Duration", "num"], ["started_at", "Started"], ["tags", "Tags"],
];
const UNSORTABLE = new Set(["id", "tags"]);
const MAX_COMPARE = 10;

function stateFrom(query) {
  return {
    sort: query.get("sort") || "created_at", order: query.get("order") === "asc" ? "asc" : "desc",
    status: query.get("status") || "", task: query.get("task") || "", tag: query.get("tag") || "",
    q: query.get("q") || "", dataset_id: query.get("dataset_id") || "",
    limit: SIZES.includes(Number(query.get("limit"))) ? Number(query.get("limit")) : 50,
    offset: Math.max(0, Number(query.get("offset")) || 0),
  };
}

export async function render(root, { query }) {
  document.title = "Runs · dlserve";
  const st = stateFrom(query);
  const picked = new Set((query.get("selected") || "").split(",").filter(Boolean));
  const body = h("tbody");
  const summary = h("span", { class: "muted small", "aria-live": "polite" });
  const prev = h("button", { type: "button" }, "← Previous");
  const next = h("button", { type: "button" }, "Next →");
  const compare = h("a", { class: "button primary", href: "/compare", "aria-disabled": "true" }, "Compare");
  const heads = {};

  const statusSel = select(STATUSES.map((s) => [s, s || "any"]), st.status);
  const taskSel = select([["", "any"], ...TASKS.map((t) => [t, t])], st.task);
  const tagIn = h("input", { type: "search", value: st.tag, placeholder: "tag" });
  const qIn = h("input", { type: "search", value: st.q, placeholder: "run id, model name, note…" });
  const sizeSel = select(SIZES.map((n) => [n, `${n} per page`]), st.limit);
  const chipText = h("span", null, `dataset ${fmt.shortId(st.dataset_id)}`);
  const datasetChip = st.dataset_id
    ? h("span", { class: "chip", title: st.dataset_id }, chipText,
      h("button", { type: "button", "aria-label": "clear the dataset filter", onclick: () => { st.dataset_id = ""; reload(true); } }, "×"))
    : null;

  const reload = async (resetPage = false) => {
    if (resetPage) st.offset = 0;
    setQuery({ ...st, sort: st.sort === "created_at" ? "" : st.sort, order: st.order === "desc" ? "" : st.order,
      limit: st.limit === 50 ? "" : st.limit, offset: st.offset || "", selected: [...picked].join(",") });
    for (const [key, th] of Object.entries(heads)) {
      if (key === st.sort) th.setAttribute("aria-sort", st.order === "asc" ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
    await load();
  };

  let latest = 0; // answers that arrive after a newer request was made are dropped
  const load = async () => {
    const mine = ++latest;
    summary.textContent = "Loading…";
    const page = await get(`/v1/jobs${qs({ sort: st.sort, order: st.order, status: st.status, task: st.task,
      tag: st.tag, q: st.q, dataset_id: st.dataset_id, limit: st.limit, offset: st.offset })}`);
    if (mine !== latest) return;
    const named = page.items.find((j) => j.dataset_name);
    if (st.dataset_id && named) chipText.textContent = `dataset ${named.dataset_name}`;
    clear(body, page.items.length ? page.items.map((j) => row(j, picked, updateCompare)) : emptyRow(COLUMNS.length + 1,
      "No runs match. Start one from “New run”."));
    const first = page.total ? st.offset + 1 : 0;
    summary.textContent = `${first.toLocaleString()}–${(st.offset + page.items.length).toLocaleString()} of ${page.total.toLocaleString()} runs`;
    prev.disabled = st.offset === 0;
    next.disabled = st.offset + page.items.length >= page.total;
    performance.mark("dlserve:runs-rendered"); // read by benchmarks/dashboard.py
  };

  const updateCompare = () => {
    const ids = [...picked];
    const ok = ids.length >= 2 && ids.length <= MAX_COMPARE;
    compare.textContent = ids.length ? `Compare ${ids.length}` : "Compare";
    compare.setAttribute("href", ok ? `/compare${qs({ ids: ids.join(",") })}` : "/compare");
    compare.setAttribute("aria-disabled", ok ? "false" : "true");
    compare.classList.toggle("primary", ok);
    compare.title = ok ? "" : `tick 2 to ${MAX_COMPARE} runs to compare`;
    setQuery({ ...Object.fromEntries(new URLSearchParams(location.search)), selected: ids.join(",") });
  };
  compare.addEventListener("click", (e) => { if (compare.getAttribute("aria-disabled") === "true") e.preventDefault(); });

  statusSel.addEventListener("change", () => { st.status = statusSel.value; reload(true); });
  taskSel.addEventListener("change", () => { st.task = taskSel.value; reload(true); });
  sizeSel.addEventListener("change", () => { st.limit = Number(sizeSel.value); reload(true); });
  const typed = debounce(() => { st.tag = tagIn.value.trim(); st.q = qIn.value.trim(); reload(true); }, 300);
  tagIn.addEventListener("input", typed);
  qIn.addEventListener("input", typed);
  prev.addEventListener("click", () => { st.offset = Math.max(0, st.offset - st.limit); reload(); });
  next.addEventListener("click", () => { st.offset += st.limit; reload(); });

  const headRow = h("tr", null, h("th", { scope: "col" }, h("span", { class: "muted" }, "✓")));
  for (const [key, label, cls] of COLUMNS) {
    const th = h("th", { scope: "col", class: cls || "" });
    if (UNSORTABLE.has(key)) th.append(label);
    else {
      th.append(h("button", { type: "button", onclick: () => {
        st.order = st.sort === key && st.order === "desc" ? "asc" : "desc";
        st.sort = key;
        reload(true);
      } }, label));
      heads[key] = th;
    }
    headRow.append(th);
  }
  if (!heads[st.sort] && st.sort !== "created_at") summary.textContent = `sorted by ${st.sort}`;

  root.append(
    h("div", { class: "page-head" }, h("div", null, h("h1", null, "Runs"),
      h("div", { class: "sub" }, "Training jobs: click a column to sort, tick two or more to compare.")),
    h("div", { class: "row" }, compare, h("a", { class: "button", href: "/new" }, "New run"))),
    h("div", { class: "panel" },
      h("div", { class: "filters", role: "search" }, field("Status", statusSel), field("Family", taskSel),
        field("Tag", tagIn), field("Search", qIn), field("Page size", sizeSel), datasetChip,
        h("div", { class: "spacer" }), h("button", { type: "button", onclick: () => load() }, "Refresh")),
      h("div", { class: "table-wrap" }, h("table", { "aria-label": "Runs" }, h("thead", null, headRow), body)),
      h("div", { class: "row", "aria-label": "pages" }, summary, h("div", { class: "spacer" }), prev, next)),
  );
  updateCompare();
  await reload();
}

function row(j, picked, onPick) {
  const box = h("input", { type: "checkbox", checked: picked.has(j.id), "aria-label": `select run ${j.id} to compare` });
  box.addEventListener("change", () => {
    if (box.checked) picked.add(j.id); else picked.delete(j.id);
    onPick();
  });
  const best = bestOf(j);
  const p = j.progress || {};
  return h("tr", null,
    h("td", null, box),
    h("td", null, h("a", { href: path("runs", j.id), class: "mono" }, fmt.shortId(j.id))),
    h("td", null, j.task),
    h("td", { class: "wrap" }, j.dataset_id
      ? h("a", { href: `/${qs({ dataset_id: j.dataset_id })}`, title: j.dataset_id }, j.dataset_name || fmt.shortId(j.dataset_id))
      : "—"),
    h("td", null, badge(j.status)),
    h("td", null, h("div", { class: "row" }, bar(p.fraction, `progress of run ${j.id}`),
      h("span", { class: "muted small" }, p.fraction !== undefined ? `${Math.round(p.fraction * 100)}%` : ""))),
    h("td", { class: "num", title: best ? best.key : "" }, best ? fmt.num(best.value) : "—",
      best ? h("div", { class: "muted small" }, best.key) : null),
    h("td", { class: "num" }, fmt.duration(fmt.runSeconds(j))),
    h("td", { title: fmt.stamp(j.started_at || j.created_at) }, fmt.when(j.started_at || j.created_at)),
    h("td", { class: "wrap" }, (j.tags || []).map((t) => h("span", { class: "chip", title: t }, t))),
  );
}
