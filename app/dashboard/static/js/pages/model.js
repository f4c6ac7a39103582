// One model: its aliases (move with a confirmation, history, one-click rollback), its versions with metrics
// and lineage (dataset -> run -> version), and the selected version's signature and metadata (?version=N).

import { ApiError, get, post, put, qs } from "../api.js";
import { clear, confirmDialog, field, h, kv, path, select, toast } from "../dom.js";
import * as fmt from "../fmt.js";
import { setQuery } from "../nav.js";

const NEEDS_TRAIN = "needs a key with the train scope";

export async function render(root, { params, query, allows }) {
  const name = params[0];
  let model;
  try {
    model = await get(path("v1", "models", name));
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      root.append(h("h1", null, "Model not found"), h("p", null, `There is no model “${name}”. `, h("a", { href: "/models" }, "All models")));
      return;
    }
    throw e;
  }
  document.title = `${name} · dlserve`;
  const canTrain = allows("train");
  const versions = [...model.versions].sort((a, b) => b.version - a.version);
  const selected = Number(query.get("version")) || versions[0]?.version;
  const histories = Object.fromEntries(await Promise.all(Object.keys(model.aliases).map(async (a) =>
    [a, (await get(path("v1", "models", name, "aliases", a, "history"))).items])));
  const datasets = !allows("read") ? {} : Object.fromEntries(await Promise.all([...new Set(versions.map((v) => v.dataset_id).filter(Boolean))]
    .map(async (id) => [id, await get(path("v1", "datasets", id)).catch(() => null)])));

  const reload = () => location.reload();
  const detail = h("div", { id: "version-detail" });
  const showVersion = (v) => {
    setQuery({ version: v.version === versions[0].version ? "" : v.version });
    for (const tr of root.querySelectorAll("tr[data-version]")) tr.classList.toggle("selected", Number(tr.dataset.version) === v.version);
    clear(detail, versionDetail(model, v, datasets[v.dataset_id]));
  };

  root.append(
    h("div", { class: "page-head" }, h("div", null, h("h1", null, model.name),
      h("div", { class: "sub" }, `${model.task} · ${versions.length} version${versions.length === 1 ? "" : "s"} · updated ${fmt.when(model.updated_at)}`)),
    h("div", { class: "row" }, allows("predict") ? h("a", { class: "button primary", href: `/try${qs({ model: model.name })}` }, "Try it") : null)),
    aliasesPanel(model, versions, histories, canTrain, reload),
    h("section", { class: "panel", "aria-label": "Versions" }, h("h2", null, "Versions"),
      h("div", { class: "table-wrap" }, h("table", { id: "versions" }, h("thead", null, h("tr", null,
        ["Version", "Created", "Metrics", "Aliases", "Lineage", "Size", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", null, versions.map((v) => versionRow(model, v, datasets[v.dataset_id], showVersion, allows("read"))))))),
    detail,
  );
  const first = versions.find((v) => v.version === selected) || versions[0];
  if (first) showVersion(first);
}

function aliasesPanel(model, versions, histories, canTrain, reload) {
  const options = versions.map((v) => [v.version, `v${v.version} · ${fmt.when(v.created_at)}`]);
  const body = h("tbody");
  for (const [alias, current] of Object.entries(model.aliases).sort()) {
    const target = select(options, current, { "aria-label": `version for ${alias}` });
    const move = h("button", { type: "button", disabled: !canTrain, title: canTrain ? "" : NEEDS_TRAIN }, "Move");
    // a rollback undoes the last move: back to the version the newest event moved it from
    const previous = (histories[alias] || [])[0]?.from_version ?? null;
    const back = h("button", { type: "button", disabled: !canTrain || previous === null,
      title: !canTrain ? NEEDS_TRAIN : previous === null ? "it has pointed at no other version" : `point it back at v${previous}` },
    previous === null ? "Roll back" : `Roll back to v${previous}`);
    const histBtn = h("button", { type: "button", class: "link", "aria-expanded": "false" }, "History");
    const histRow = h("tr", { hidden: true }, h("td", { colspan: 4 }, historyList(alias, histories[alias] || [])));
    move.addEventListener("click", async () => {
      const v = Number(target.value);
      if (v === current) { toast(`${alias} already points at v${v}`); return; }
      if (!(await confirmDialog(`Move ${alias}?`, `${model.name}: ${alias} moves from v${current} to v${v}. Clients of ${alias} are served v${v} within seconds.`, `Move to v${v}`))) return;
      try {
        await put(path("v1", "models", model.name, "aliases", alias), { version: v });
        toast(`${alias} → v${v}`);
        reload();
      } catch (e) { toast(e.message, true); }
    });
    back.addEventListener("click", async () => {
      if (!(await confirmDialog(`Roll back ${alias}?`, `${model.name}: ${alias} goes back from v${current} to v${previous}, where it pointed before.`, "Roll back"))) return;
      try {
        const out = await post(path("v1", "models", model.name, "aliases", alias, "rollback"));
        toast(`${alias} rolled back to v${out.version}`);
        reload();
      } catch (e) { toast(e.message, true); }
    });
    histBtn.addEventListener("click", () => {
      histRow.hidden = !histRow.hidden;
      histBtn.setAttribute("aria-expanded", String(!histRow.hidden));
    });
    body.append(h("tr", { "data-alias": alias }, h("td", null, h("strong", null, alias)), h("td", null, `v${current}`),
      h("td", null, h("div", { class: "row" }, target, move, back)), h("td", null, histBtn)), histRow);
  }
  const newName = h("input", { type: "text", placeholder: "e.g. staging", maxlength: 64, disabled: !canTrain });
  const newVersion = select(options, versions[0]?.version, { disabled: !canTrain });
  const add = h("button", { type: "button", disabled: !canTrain, title: canTrain ? "" : NEEDS_TRAIN }, "Set alias");
  const nameField = field("New alias", newName);
  add.addEventListener("click", async () => {
    nameField.setError("");
    const alias = newName.value.trim();
    if (!/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(alias)) { nameField.setError("A letter, then letters, digits, “.”, “_” or “-”."); return; }
    const v = Number(newVersion.value);
    if (!(await confirmDialog(`Set ${alias}?`, `${model.name}: ${alias} will point at v${v}.`, "Set alias"))) return;
    try {
      await put(path("v1", "models", model.name, "aliases", alias), { version: v });
      reload();
    } catch (e) { nameField.setError(e.message); }
  });
  return h("section", { class: "panel", "aria-label": "Aliases" }, h("h2", null, "Aliases"),
    Object.keys(model.aliases).length ? h("div", { class: "table-wrap" }, h("table", { id: "aliases" }, h("thead", null,
      h("tr", null, ["Alias", "Points at", "Move", ""].map((t) => h("th", { scope: "col" }, t)))), body))
      : h("p", { class: "muted" }, "No aliases yet."),
    h("div", { class: "filters" }, nameField, field("Version", newVersion), add));
}

// newest first: from which version to which, by whom (a key's name, or the job that registered it), when
function historyList(alias, items) {
  if (!items.length) return h("span", { class: "muted" }, "No moves recorded.");
  return h("ol", { class: "small", "aria-label": `history of ${alias}` }, items.map((it) =>
    h("li", null, it.from_version === null ? "created at " : `v${it.from_version} → `,
      it.to_version === null ? "removed" : `v${it.to_version}`,
      h("span", { class: "muted" }, ` · ${fmt.stamp(it.at)} · by `), it.actor)));
}

function lineage(model, v, dataset) {
  return h("span", { class: "small" },
    v.dataset_id ? h("a", { href: `/${qs({ dataset_id: v.dataset_id })}`, title: v.dataset_id }, dataset ? dataset.name : fmt.shortId(v.dataset_id)) : h("span", { class: "muted" }, "uploaded"),
    v.run_id ? [" → ", h("a", { href: path("runs", v.run_id), class: "mono" }, fmt.shortId(v.run_id))] : null,
    ` → v${v.version}`);
}

function metricsText(metrics) {
  if (!Object.values(metrics || {}).some((x) => typeof x === "number")) return h("span", { class: "muted" }, "—");
  return Object.entries(metrics || {}).filter(([, x]) => typeof x === "number").slice(0, 4)
    .map(([k, x]) => h("div", { class: "small" }, h("span", { class: "muted" }, `${k} `), fmt.num(x)));
}

function versionRow(model, v, dataset, onSelect, canRead) {
  const pick = h("button", { type: "button", class: "link" }, `v${v.version}`);
  pick.addEventListener("click", () => onSelect(v));
  return h("tr", { "data-version": v.version },
    h("td", null, pick, v.status !== "ready" ? h("span", { class: "badge" }, v.status) : null),
    h("td", { title: fmt.stamp(v.created_at) }, fmt.when(v.created_at)),
    h("td", null, metricsText(v.metrics)),
    h("td", null, v.aliases.map((a) => h("span", { class: "chip" }, a))),
    h("td", null, lineage(model, v, dataset)),
    h("td", { class: "num" }, fmt.bytes(v.size_bytes)),
    h("td", null, canRead ? h("a", { href: path("v1", "models", model.name, "versions", v.version, "artifact"), download: "" }, "Download") : null));
}

function tensors(list) {
  return list.map((t) => h("div", { class: "mono small" }, `${t.name}: ${t.datatype} [${t.shape.join(", ")}]`));
}

function versionDetail(model, v, dataset) {
  return h("section", { class: "panel stack", "aria-label": `Version ${v.version}` }, h("h2", null, `${model.name} v${v.version}`),
    h("div", { class: "grid2" },
      kv([["Lineage", lineage(model, v, dataset)], ["Created", fmt.stamp(v.created_at)], ["Status", v.status],
        ["SHA-256", h("span", { class: "mono small" }, v.sha256)], ["Inputs", tensors(v.inputs)], ["Outputs", tensors(v.outputs)]]),
      h("div", null, h("h3", null, "Metrics"), Object.keys(v.metrics || {}).length
        ? kv(Object.entries(v.metrics).map(([k, x]) => [k, typeof x === "number" ? fmt.num(x) : JSON.stringify(x)]))
        : h("p", { class: "muted" }, "none recorded (an uploaded version)"))),
    h("details", null, h("summary", null, "Metadata"), h("pre", { class: "log" }, JSON.stringify(v.metadata, null, 2))));
}
