"""Detection serving (numpy only): image -> letterboxed tensor; per-location outputs -> class-wise NMS ->
boxes in the original image's pixels. Serves this family's own layout and the YOLOv8 export layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.common.errors import InputError, MetadataMismatch
from models.common.images import DEFAULT_MAX_PIXELS, decode_input
from models.common.signature import one_input, output_named
from models.detection.boxes import PAD_VALUE, Letterbox, select
from models.detection.schemas import DEFAULTS

LAYOUTS = ("dlserve", "yolov8")


@dataclass(frozen=True)
class Spec:
    input_name: str
    output_name: str
    size: tuple[int, int]
    layout: str
    labels: tuple[str, ...] | None
    pad_value: int = PAD_VALUE
    max_pixels: int = DEFAULT_MAX_PIXELS


def make_spec(signature: dict[str, Any], metadata: dict[str, Any], max_pixels: int = DEFAULT_MAX_PIXELS) -> Spec:
    image, outputs = one_input(signature, 4, "a detection model takes one image input [N, 3, H, W]")
    shape = image["shape"]
    if shape[1] not in (-1, 3):
        raise ValueError(f"a detection model takes RGB images [N, 3, H, W]; this input is {shape}")
    layout = metadata.get("layout", "dlserve")
    if layout not in LAYOUTS:
        raise ValueError(f"metadata.layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    pre = metadata.get("preprocessing") or {}
    size = pre.get("size") or [shape[2], shape[3]]
    if min(size) <= 0:
        raise ValueError("the model's input has no fixed height and width; give metadata.preprocessing.size")
    out = output_named(outputs, "predictions")
    if len(out["shape"]) != 3:
        raise ValueError(f"output {out['name']!r} is {out['shape']}; a {layout} detector outputs "
                         + ("[N, A, 4 + C]" if layout == "dlserve" else "[N, 4 + C, A]"))
    labels = metadata.get("labels")
    width = out["shape"][2] if layout == "dlserve" else out["shape"][1]
    if labels and width > 0 and width != 4 + len(labels):
        raise MetadataMismatch(f"output {out['name']!r} {out['shape']} has {width - 4} class scores per box "
                         f"but metadata.labels names {len(labels)}")
    return Spec(image["name"], out["name"], (int(size[0]), int(size[1])), layout,
                tuple(str(x) for x in labels) if labels else None, int(pre.get("pad_value", PAD_VALUE)), max_pixels)


def decode(item: Any, index: int, spec: Spec) -> np.ndarray:
    return decode_input(item, index, "RGB", spec.max_pixels)


def preprocess(item: Any, index: int, params: dict[str, Any], spec: Spec) -> tuple[dict[str, np.ndarray], Letterbox]:
    """One input -> ({input name: float32 [1, 3, S, S]}, how it was letterboxed: postprocess undoes it)."""
    img = decode(item, index, spec)
    box = Letterbox.fit(img.shape[0], img.shape[1], spec.size)
    x = box.apply(img, spec.size, spec.pad_value).astype(np.float32).transpose(2, 0, 1) * (1.0 / 255.0)
    return {spec.input_name: x[None]}, box


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise InputError("parameters", f"unknown option(s) {sorted(unknown)}; detection takes {', '.join(DEFAULTS)}")
    out = {**DEFAULTS, **params}
    for key in ("score_threshold", "iou_threshold"):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise InputError(f"parameters.{key}", "must be a number between 0 and 1")
        out[key] = float(v)
    m = out["max_detections"]
    if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 1000:
        raise InputError("parameters.max_detections", "must be an integer between 1 and 1000")
    return out


def split_outputs(out: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """One row of a detector's output -> (boxes [A, 4] xyxy in input pixels, scores [A, C])."""
    out = out.reshape(out.shape[-2:]) if out.ndim == 3 else out
    if layout == "yolov8":  # [4 + C, A], cx cy w h
        out = out.T
        cx, cy, w, h = out[:, 0], out[:, 1], out[:, 2] / 2, out[:, 3] / 2
        return np.stack([cx - w, cy - h, cx + w, cy + h], 1), out[:, 4:]
    return out[:, :4], out[:, 4:]


def postprocess(outputs: dict[str, np.ndarray], params: dict[str, Any], spec: Spec,
                context: Letterbox | None = None) -> dict[str, Any]:
    """One row -> {"detections": [{"box": [x1, y1, x2, y2], "label", "score"}, ...]} best first, boxes in
    the original image's pixels (context: the letterbox of preprocess)."""
    boxes, scores = split_outputs(np.asarray(outputs[spec.output_name]), spec.layout)
    boxes, conf, cls = select(boxes, scores, params["score_threshold"], params["iou_threshold"],
                              params["max_detections"])
    if context is not None:
        boxes = context.backward(boxes)
    names = spec.labels
    return {"detections": [
        {"box": [round(float(v), 2) for v in b], "label": names[c] if names and c < len(names) else str(int(c)),
         "score": round(float(s), 5)}
        for b, s, c in zip(boxes, conf, cls, strict=True)]}
