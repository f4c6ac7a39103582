// Translation: a text box in, the model's translation (and its alternatives) out, as text.

import { clear, field, h } from "../dom.js";
import { num } from "../fmt.js";

export async function render(stage, { version, predict, canPredict, showError }) {
  const meta = version.metadata || {};
  const langs = [meta.source_lang, meta.target_lang].filter(Boolean).join(" → ");
  const text = h("textarea", { rows: 4, maxlength: 2000, id: "source-text", placeholder: "A sentence to translate" });
  // the version's own default beam (metadata.decoding, its evaluation beam)
  const beam = h("input", { type: "number", min: 1, max: 16, step: 1, value: (meta.decoding || {}).beam_size || 4 });
  const go = h("button", { type: "submit", class: "primary", disabled: !canPredict }, "Translate");
  const out = h("div", { id: "answer", "aria-live": "polite" });
  const form = h("form", { class: "stack", method: "post", action: "/try", "aria-label": "Translate" },
    field(langs ? `Text (${langs})` : "Text", text), h("div", { class: "row" }, field("Beam size", beam), h("div", { class: "spacer" }), go));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!text.value.trim()) return;
    showError(null);
    go.disabled = true;
    clear(out, h("p", { class: "muted" }, "Translating…"));
    try {
      const answer = await predict({ inputs: [{ text: text.value }], parameters: { beam_size: Number(beam.value) || 1, n_best: Math.min(3, Number(beam.value) || 1) } });
      const r = answer.outputs[0];
      clear(out, h("p", { class: "muted small" }, `${answer.model} v${answer.version}`),
        h("p", { class: "answer", id: "translation" }, r.translation || "(empty)"),
        (r.n_best || []).length > 1 ? h("details", null, h("summary", { class: "small" }, "Other candidates"),
          h("ol", { class: "small" }, r.n_best.slice(1).map((c) => h("li", null, c.translation, h("span", { class: "muted" }, ` (${num(c.score)})`))))) : null);
    } catch (err) {
      clear(out);
      showError(err);
    } finally {
      go.disabled = !canPredict;
    }
  });
  stage.append(h("h2", null, "Translate"), h("div", { class: "grid2" }, form, out));
}
