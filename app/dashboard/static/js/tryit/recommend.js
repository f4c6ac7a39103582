// Recommendation: pick a user the model was trained on; its top items appear next to the ratings that
// user gave in the training data (GET /v1/datasets/{id}/ratings?user=), so the two can be compared.

import { ApiError, get, qs } from "../api.js";
import { clear, field, h, path, select } from "../dom.js";
import { num } from "../fmt.js";

const MAX_USERS = 2000; // the picker lists this many; any other id can be typed

export async function render(stage, { version, predict, canPredict, canRead, showError }) {
  const meta = version.metadata || {};
  const users = (meta.users || []).slice(0, MAX_USERS).map(String);
  const titles = meta.titles || {};
  const title = (item) => titles[String(item)];
  const user = h("input", { type: "text", list: "user-ids", id: "user-id", value: users[0] || "", spellcheck: "false" });
  const ids = h("datalist", { id: "user-ids" }, users.map((u) => h("option", { value: u })));
  if (canRead && version.dataset_id) {
    // the dataset's users, most ratings first, each with how many it gave (GET /v1/datasets/{id}/users)
    get(`${path("v1", "datasets", version.dataset_id, "users")}${qs({ limit: 1000 })}`).then((page) => clear(ids,
      page.items.map((u) => h("option", { value: String(u.user) }, `${u.ratings} ratings`)))).catch(() => {});
  }
  const k = select([5, 10, 20], 10, { "aria-label": "how many items" });
  const go = h("button", { type: "submit", class: "primary", disabled: !canPredict }, "Recommend");
  const recs = h("div", { id: "recommendations", "aria-live": "polite" });
  const given = h("div", { id: "given" });
  const form = h("form", { class: "filters", method: "post", action: "/try", "aria-label": "Recommend" },
    field(`User (one of ${(meta.users || []).length} in training)`, user), ids, field("Items", k), go);

  const itemCell = (item, named) => h("td", { class: "wrap" }, h("span", { class: "mono" }, String(item)),
    named || title(item) ? h("div", { class: "small" }, named || title(item)) : null);
  const ratings = async (u) => {
    if (!version.dataset_id) return h("p", { class: "muted" }, "This version has no training dataset on record.");
    if (!canRead) return h("p", { class: "muted" }, "Seeing the training ratings needs a key with the read scope.");
    try {
      const body = await get(`${path("v1", "datasets", version.dataset_id, "ratings")}${qs({ user: u, limit: 100 })}`);
      if (!body.items.length) return h("p", { class: "muted" }, "This user rated nothing in the training data.");
      return h("div", null, h("table", { "aria-label": "ratings given in training" }, h("thead", null, h("tr", null, h("th", null, "Item"), h("th", { class: "num" }, "Rating"))),
        h("tbody", null, body.items.map((r) => h("tr", null, itemCell(r.item, r.title), h("td", { class: "num" }, num(r.rating)))))),
      body.total > body.items.length ? h("p", { class: "muted small" }, `the ${body.items.length} highest of ${body.total}`) : null);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return h("p", { class: "muted" }, "The training dataset is no longer stored.");
      throw e;
    }
  };

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const u = user.value.trim();
    if (!u) return;
    showError(null);
    go.disabled = true;
    clear(recs, h("p", { class: "muted" }, "Asking the model…"));
    try {
      const id = /^\d+$/.test(u) ? Number(u) : u;
      const [answer, table] = await Promise.all([predict({ inputs: [{ user: id, k: Number(k.value) }] }), ratings(u)]);
      const r = answer.outputs[0];
      clear(recs, h("p", { class: "muted small" }, `${answer.model} v${answer.version}${r.known === false ? " · unknown user: ranked by popularity" : ""}`),
        h("table", { "aria-label": "recommended items" }, h("thead", null, h("tr", null, h("th", null, "#"), h("th", null, "Item"), h("th", { class: "num" }, "Score"))),
          h("tbody", null, r.items.map((it, i) => h("tr", null, h("td", null, String(i + 1)), itemCell(it.item), h("td", { class: "num" }, num(it.score)))))));
      clear(given, table);
    } catch (err) {
      clear(recs);
      showError(err);
    } finally {
      go.disabled = !canPredict;
    }
  });
  stage.append(h("h2", null, "Recommend for a user"), form,
    h("div", { class: "grid2" }, h("div", null, h("h3", null, "Recommended (not yet rated)"), recs),
      h("div", null, h("h3", null, "Ratings this user gave in training"), given)));
}
