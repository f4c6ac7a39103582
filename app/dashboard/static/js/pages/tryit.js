// Try a model in the browser, for every family: pick a model and a version or alias (?model=&version=
// or ?alias=), then the family's own playground (tryit/*.js) asks POST /v1/models/{name}/predict.

import { ApiError, get, qs, request } from "../api.js";
import { clear, field, h, path, select } from "../dom.js";
import * as fmt from "../fmt.js";
import { setQuery } from "../nav.js";

const PLAYGROUNDS = { classification: "images", detection: "images", captioning: "images", translation: "text",
  recommendation: "recommend", fraud: "fraud" };

export async function render(root, { query, allows }) {
  document.title = "Try it · dlserve";
  const models = await get("/v1/models");
  root.append(h("div", { class: "page-head" }, h("div", null, h("h1", null, "Try it"),
    h("div", { class: "sub" }, "Ask a model a question the way a client would, and see its answer."))));
  if (!models.length) {
    root.append(h("p", { class: "panel muted" }, "No models yet: train one from ", h("a", { href: "/new" }, "New run"), "."));
    return;
  }
  const name = models.some((m) => m.name === query.get("model")) ? query.get("model") : models[0].name;
  const model = await get(path("v1", "models", name));
  const versions = [...model.versions].sort((a, b) => b.version - a.version);
  const aliasOpts = Object.entries(model.aliases).sort().map(([a, v]) => [`alias:${a}`, `${a} (v${v})`]);
  const versionOpts = versions.map((v) => [`version:${v.version}`, `v${v.version} · ${fmt.when(v.created_at)}`]);
  const fromQuery = query.get("alias") ? `alias:${query.get("alias")}` : query.get("version") ? `version:${query.get("version")}` : null;
  const all = [...aliasOpts, ...versionOpts].map(([v]) => v);
  const target = all.includes(fromQuery) ? fromQuery : model.aliases.production ? "alias:production" : all[aliasOpts.length] || all[0];

  const modelSel = select(models.map((m) => [m.name, `${m.name} (${m.task})`]), name);
  const targetSel = h("select", null, aliasOpts.length ? h("optgroup", { label: "Aliases" }, aliasOpts.map(([v, l]) => h("option", { value: v, selected: v === target }, l))) : null,
    h("optgroup", { label: "Versions" }, versionOpts.map(([v, l]) => h("option", { value: v, selected: v === target }, l))));
  const reopen = (params) => location.assign(`/try${qs(params)}`);
  modelSel.addEventListener("change", () => reopen({ model: modelSel.value }));
  targetSel.addEventListener("change", () => {
    const [kind, value] = targetSel.value.split(/:(.*)/s);
    reopen({ model: name, [kind]: value });
  });
  const [kind, value] = target.split(/:(.*)/s);
  setQuery({ model: name, [kind]: value });
  const versionNo = kind === "version" ? Number(value) : model.aliases[value];
  const version = versions.find((v) => v.version === versionNo) || versions[0];

  const canPredict = allows("predict");
  const stage = h("section", { class: "panel stack", id: "playground", "aria-label": "Playground" });
  root.append(h("section", { class: "panel" }, h("div", { class: "filters" }, field("Model", modelSel), field("Version or alias", targetSel),
    h("div", { class: "spacer" }), h("a", { href: path("models", name) }, `${name} in the registry`))), stage);
  if (!canPredict) stage.append(h("p", { class: "alert", id: "no-predict" }, "This key cannot predict (it needs the predict scope): the form is shown, its button is disabled."));

  // POST .../predict with JSON ({inputs, parameters}) or a FormData of image files
  const predict = async (body) => {
    const url = `${path("v1", "models", name, "predict")}${qs({ [kind]: value })}`;
    const opts = body instanceof FormData ? { method: "POST", body } : { method: "POST", json: body };
    return request(url, opts);
  };
  const play = PLAYGROUNDS[model.task];
  if (!play) {
    stage.append(h("p", { class: "muted" }, `No playground for ${model.task} models: call POST /v2/models/${name}/infer with tensors.`));
    return;
  }
  const mod = await import(`../tryit/${play}.js`);
  await mod.render(stage, { model, version, task: model.task, predict, canPredict, canRead: allows("read"),
    showError: (e) => showError(stage, e) });
}

// A refused prediction (a bad image, a missing feature): the API's sentence, as text
export function showError(stage, e) {
  let box = stage.querySelector(".predict-error");
  if (!box) {
    box = h("p", { class: "alert predict-error", role: "alert" });
    stage.append(box);
  }
  if (!e) { box.remove(); return; }
  clear(box, e instanceof ApiError ? e.message : String(e.message || e));
}
