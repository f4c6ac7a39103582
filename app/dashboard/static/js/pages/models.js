// The registry: every model with its latest version, how many it has, and where its aliases point.

import { get, qs } from "../api.js";
import { emptyRow, h, path } from "../dom.js";
import * as fmt from "../fmt.js";

export async function render(root, { allows }) {
  document.title = "Registry · dlserve";
  const models = await get("/v1/models");
  const body = h("tbody", null, models.length ? models.map((m) => h("tr", null,
    h("td", { class: "wrap" }, h("a", { href: path("models", m.name) }, h("strong", null, m.name))),
    h("td", null, m.task),
    h("td", { class: "num" }, `v${m.latest_version}`),
    h("td", { class: "num" }, String(m.version_count)),
    h("td", { class: "wrap" }, Object.entries(m.aliases).sort().map(([a, v]) => h("span", { class: "chip", title: `${a} → v${v}` }, `${a} → v${v}`))),
    h("td", { title: fmt.stamp(m.updated_at) }, fmt.when(m.updated_at)),
    h("td", null, allows("predict") ? h("a", { href: `/try${qs({ model: m.name })}` }, "Try it") : null),
  )) : emptyRow(7, "No models yet: a run registers one when it succeeds."));
  root.append(
    h("div", { class: "page-head" }, h("div", null, h("h1", null, "Registry"),
      h("div", { class: "sub" }, "Models, their versions and aliases. `production` is what predictions use by default."))),
    h("section", { class: "panel" }, h("div", { class: "table-wrap" }, h("table", { "aria-label": "Models" },
      h("thead", null, h("tr", null, ["Model", "Family", "Latest", "Versions", "Aliases", "Updated", ""].map((t) =>
        h("th", { scope: "col", class: t === "Latest" || t === "Versions" ? "num" : "" }, t)))), body))),
  );
}
