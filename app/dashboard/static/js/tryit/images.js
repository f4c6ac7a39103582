// Image families: drop (or choose) an image; classification shows its top-k labels as bars, detection
// draws the boxes with their labels and scores on the image, captioning writes the caption under it.
// Labels and captions come from the model's metadata and outputs: they are drawn as canvas text or
// inserted as text, never as markup.

import { clear, field, h } from "../dom.js";
import { num } from "../fmt.js";

const BOX_COLOURS = ["#e0663a", "#3b6fd8", "#2e9e6b", "#a65bd0", "#d4a017", "#1aa3b8"];

export async function render(stage, { task, predict, canPredict, showError }) {
  const input = h("input", { type: "file", accept: "image/*", id: "image-file", disabled: !canPredict });
  const drop = h("label", { class: "drop", for: "image-file", tabindex: "0" },
    h("strong", null, "Drop an image here"), h("div", { class: "small" }, "or press Enter to choose a file"));
  const topK = h("input", { type: "number", min: 1, max: 100, value: 5, step: 1 });
  const threshold = h("input", { type: "number", min: 0, max: 1, value: 0.25, step: 0.05 });
  const maxBoxes = h("input", { type: "number", min: 1, max: 1000, value: 20, step: 1 });
  const out = h("div", { id: "answer", "aria-live": "polite" });
  const controls = task === "classification" ? field("Top k", topK) : task === "detection"
    ? h("div", { class: "form-grid" }, field("Score threshold", threshold), field("Most boxes", maxBoxes)) : null;
  stage.append(h("h2", null, task === "classification" ? "Classify an image" : task === "detection" ? "Detect objects" : "Caption an image"),
    h("div", { class: "grid2" }, h("div", { class: "stack" }, drop, input, controls), out));

  const run = async (file) => {
    if (!file || !canPredict) return;
    showError(null);
    const form = new FormData();
    form.append("file", file);
    if (task === "classification") form.append("parameters", JSON.stringify({ top_k: Number(topK.value) || 5 }));
    if (task === "detection") {
      const t = threshold.value.trim() === "" ? NaN : Number(threshold.value);
      form.append("parameters", JSON.stringify({ score_threshold: Number.isFinite(t) ? t : 0.25,
        max_detections: Math.max(1, Math.round(Number(maxBoxes.value)) || 20) }));
    }
    const url = URL.createObjectURL(file);
    clear(out, h("p", { class: "muted" }, "Asking the model…"));
    try {
      const answer = await predict(form);
      const result = answer.outputs[0];
      const img = await loaded(url);
      clear(out, h("p", { class: "muted small" }, `${answer.model} v${answer.version}`));
      if (task === "classification") out.append(h("img", { class: "preview", src: url, alt: "the image sent" }), labels(result.labels));
      else if (task === "detection") out.append(boxes(img, result.detections));
      else out.append(h("img", { class: "preview", src: url, alt: "the image sent" }), caption(result));
    } catch (e) {
      clear(out);
      showError(e);
    }
  };
  input.addEventListener("change", () => run(input.files[0]));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    run(e.dataTransfer.files[0]);
  });
}

function loaded(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the browser cannot show this image"));
    img.src = url;
  });
}

function labels(list) {
  const box = h("div", { class: "stack", id: "labels", "aria-label": "top labels" });
  for (const { label, score } of list) {
    const fill = h("div");
    fill.style.width = `${Math.max(0, Math.min(1, score)) * 100}%`;
    box.append(h("div", { class: "hbar" }, h("span", { class: "label" }, label), h("div", { class: "track" }, fill),
      h("span", { class: "num" }, `${(score * 100).toFixed(1)}%`)));
  }
  return box;
}

function caption(result) {
  return h("div", null, h("p", { class: "answer", id: "caption" }, result.caption || "(no caption)"),
    Number.isFinite(result.score) ? h("p", { class: "muted small" }, `log-probability ${num(result.score)}`) : null);
}

// The image at a readable size with each box, its label and score drawn on a canvas
function boxes(img, detections) {
  const scale = Math.max(1, Math.min(8, Math.floor(480 / Math.max(img.naturalWidth, img.naturalHeight))));
  const canvas = h("canvas", { class: "boxes", width: img.naturalWidth * scale, height: img.naturalHeight * scale,
    role: "img", "aria-label": `${detections.length} detections` });
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  ctx.font = "13px system-ui, sans-serif";
  ctx.lineWidth = 2;
  detections.forEach((d, i) => {
    const [x1, y1, x2, y2] = d.box.map((v) => v * scale);
    const colour = BOX_COLOURS[i % BOX_COLOURS.length];
    ctx.strokeStyle = colour;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = `${d.label} ${(d.score * 100).toFixed(0)}%`;
    const w = ctx.measureText(text).width + 8;
    const ty = y1 > 18 ? y1 - 18 : y1;
    ctx.fillStyle = colour;
    ctx.fillRect(x1, ty, w, 18);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x1 + 4, ty + 13);
  });
  const list = h("ul", { class: "small scroll", id: "detections" }, detections.map((d) =>
    h("li", null, h("strong", null, d.label), ` ${(d.score * 100).toFixed(1)}% at [${d.box.map((v) => Math.round(v)).join(", ")}]`)));
  return h("div", { class: "stack" }, canvas, detections.length ? list : h("p", { class: "muted" }, "Nothing found above the threshold."));
}
