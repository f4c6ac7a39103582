// Fraud: a form with one field per feature of the version (metadata.features), or a CSV row pasted (with
// its header line, or the features alone in order), scored against the version's threshold.

import { clear, field, h } from "../dom.js";
import { num } from "../fmt.js";

export function parseRow(text, features) {
  const lines = text.trim().split(/\r?\n/).filter((l) => l.trim());
  const cells = (l) => l.split(/[,;\t]/).map((c) => c.trim());
  if (lines.length >= 2) {
    const head = cells(lines[0]);
    const row = cells(lines[1]);
    if (head.length !== row.length) throw new Error(`the header has ${head.length} columns, the row ${row.length}`);
    return Object.fromEntries(head.map((name, i) => [name, Number(row[i])]));
  }
  const row = cells(lines[0] || "");
  if (row.length !== features.length) {
    throw new Error(`a row without its header must hold the ${features.length} features in order (${features.join(", ")}); it has ${row.length} values`);
  }
  return Object.fromEntries(features.map((name, i) => [name, Number(row[i])]));
}

export async function render(stage, { version, predict, canPredict, showError }) {
  const meta = version.metadata || {};
  const features = (meta.features || []).map(String);
  const inputs = Object.fromEntries(features.map((f) => [f, h("input", { type: "number", step: "any", value: 0, name: f })]));
  const paste = h("textarea", { rows: 3, id: "csv-row", placeholder: "V1,V2,...,Amount\n0.1,-1.2,...,42.5", spellcheck: "false" });
  const fill = h("button", { type: "button" }, "Fill the form from the row");
  const go = h("button", { type: "submit", class: "primary", disabled: !canPredict }, "Score");
  const out = h("div", { id: "answer", "aria-live": "polite" });
  const pasteField = field("Or paste a CSV row", paste, "With its header line, or only the features in the order of the form.");
  fill.addEventListener("click", () => {
    pasteField.setError("");
    try {
      const values = parseRow(paste.value, features);
      for (const [k, v] of Object.entries(values)) if (inputs[k]) inputs[k].value = String(v);
    } catch (e) {
      pasteField.setError(e.message);
    }
  });
  const form = h("form", { class: "stack", method: "post", action: "/try", "aria-label": "Score a transaction" },
    h("div", { class: "form-grid" }, features.map((f) => field(f, inputs[f]))), pasteField,
    h("div", { class: "row" }, fill, h("div", { class: "spacer" }), go));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(null);
    if (paste.value.trim()) fill.click();
    const record = Object.fromEntries(features.map((f) => [f, Number(inputs[f].value)]));
    go.disabled = true;
    try {
      const answer = await predict({ inputs: [{ features: record }] });
      clear(out, verdict(answer, answer.outputs[0]));
    } catch (err) {
      clear(out);
      showError(err);
    } finally {
      go.disabled = !canPredict;
    }
  });
  stage.append(h("h2", null, "Score a transaction"),
    features.length ? h("div", { class: "grid2" }, form, out) : h("p", { class: "muted" }, "This version's metadata lists no features."));
}

function verdict(answer, r) {
  // a probability (mlp) or a reconstruction error (autoencoders, unbounded): the gauge spans both
  const top = Math.max(1, r.threshold * 2, r.score);
  const fillBar = h("div", { class: `fill${r.is_fraud ? " bad" : ""}` });
  fillBar.style.width = `${Math.max(0, r.score / top) * 100}%`;
  const mark = h("div", { class: "mark" }, h("span", null, `threshold ${num(r.threshold)}`));
  mark.style.left = `${Math.max(0, r.threshold / top) * 100}%`;
  return h("div", { class: "stack" }, h("p", { class: "muted small" }, `${answer.model} v${answer.version}`),
    h("p", { class: "answer", id: "verdict" }, r.is_fraud ? "Fraud" : "Legitimate", h("span", { class: "muted" }, ` · score ${num(r.score)}`)),
    h("div", { class: "gauge", role: "img", "aria-label": `score ${num(r.score)} against threshold ${num(r.threshold)}` }, fillBar, mark),
    (r.top_features || []).length ? h("div", null, h("h3", null, "Features that weighed most"),
      h("ul", { class: "small" }, r.top_features.map((t) => h("li", null, h("span", { class: "mono" }, t.feature), ` ${num(t.contribution)}`)))) : null);
}
