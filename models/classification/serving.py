"""Classification serving (numpy only): image -> normalised tensor; logits -> top-k {label, score}."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.classification.schemas import DEFAULT_TOP_K
from models.common.errors import InputError, MetadataMismatch
from models.common.images import DEFAULT_MAX_PIXELS, decode_input, resize
from models.common.signature import one_input, output_named


@dataclass(frozen=True)
class Spec:
    input_name: str
    output_name: str
    size: tuple[int, int]
    channels: int
    mean: np.ndarray  # [C, 1, 1] float32
    std: np.ndarray
    labels: tuple[str, ...] | None
    max_pixels: int = DEFAULT_MAX_PIXELS


def make_spec(signature: dict[str, Any], metadata: dict[str, Any], max_pixels: int = DEFAULT_MAX_PIXELS) -> Spec:
    """What serving needs to know about a version, worked out once when it loads."""
    image, outputs = one_input(signature, 4, "a classification model takes one input [N, C, H, W]")
    size, channels, mean, std = image_preprocessing(image["shape"], metadata)
    out = output_named(outputs, "logits")
    labels = metadata.get("labels")
    classes = out["shape"][-1] if len(out["shape"]) == 2 else -1
    if labels and classes > 0 and classes != len(labels):
        raise MetadataMismatch(f"metadata.labels names {len(labels)} labels but output {out['name']!r} "
                               f"{out['shape']} has {classes} classes")
    return Spec(image["name"], out["name"], size, channels, mean, std,
                tuple(str(x) for x in labels) if labels else None, max_pixels)


def image_preprocessing(shape: list[int], metadata: dict[str, Any]) -> tuple[tuple[int, int], int, np.ndarray,
                                                                              np.ndarray]:
    """(size, channels, mean [C, 1, 1], std) of an image input [N, C, H, W]: metadata.preprocessing where the
    version has it, else read off the input shape with mean 0 and std 1. Captioning's encoder uses it too."""
    pre = metadata.get("preprocessing") or {}
    channels = int(pre.get("channels") or (shape[1] if shape[1] > 0 else 3))
    size = pre.get("size") or [shape[2], shape[3]]
    if min(size) <= 0:
        raise ValueError("the model's input has no fixed height and width; give metadata.preprocessing.size")
    mean = np.asarray(pre.get("mean", [0.0] * channels), np.float32).reshape(-1, 1, 1)
    std = np.asarray(pre.get("std", [1.0] * channels), np.float32).reshape(-1, 1, 1)
    return (int(size[0]), int(size[1])), channels, mean, std


def image_tensor(img: np.ndarray, size: tuple[int, int], mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """A decoded image -> float32 [1, C, H, W]: resized, scaled to [0, 1], then (x - mean) / std."""
    x = resize(img, size).astype(np.float32) * (1.0 / 255.0)
    x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
    return ((x - mean) / std)[None].astype(np.float32, copy=False)


def decode(item: Any, index: int, spec: Spec) -> np.ndarray:
    return decode_input(item, index, "L" if spec.channels == 1 else "RGB", spec.max_pixels)


def preprocess(item: Any, index: int, params: dict[str, Any], spec: Spec) -> dict[str, np.ndarray]:
    """One input -> {input name: float32 [1, C, H, W]}."""
    return {spec.input_name: image_tensor(decode(item, index, spec), spec.size, spec.mean, spec.std)}


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    top_k = params.get("top_k", DEFAULT_TOP_K)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InputError("parameters.top_k", "must be a positive integer")
    unknown = set(params) - {"top_k"}
    if unknown:
        raise InputError("parameters", f"unknown option(s) {sorted(unknown)}; classification takes top_k")
    return {"top_k": top_k}


def postprocess(outputs: dict[str, np.ndarray], params: dict[str, Any], spec: Spec) -> dict[str, Any]:
    """One row of outputs -> {"labels": [{"label", "score"}, ...]} best first, scores are softmax."""
    logits = outputs[spec.output_name].reshape(-1).astype(np.float64)
    e = np.exp(logits - logits.max())
    probs = e / e.sum()
    k = min(params["top_k"], probs.size)
    top = np.argpartition(-probs, k - 1)[:k]
    top = top[np.argsort(-probs[top], kind="stable")]
    names = spec.labels
    return {"labels": [{"label": names[i] if names and i < len(names) else str(int(i)), "score": float(probs[i])}
                       for i in top]}
