"""ONNX Runtime evaluation of a classification version (issue 20; numpy and ONNX Runtime only): model.onnx
on the validation images of training.load_dataset's Prepared data, normalised as served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.common import calibration, onnx_eval


def correct(logits: np.ndarray, y: np.ndarray) -> int:
    """How many rows' top logit is their label: the accuracy's count, for training.evaluate's PyTorch
    logits and for ONNX Runtime's alike."""
    return int((np.asarray(logits).argmax(1) == np.asarray(y)).sum())


def cross_entropy_sum(logits: np.ndarray, y: np.ndarray) -> float:
    """Summed cross-entropy of float logits [N, K] against labels [N], in float64. (training.evaluate keeps
    torch's own, whose last bits the runs' golden records hold.)"""
    z = np.asarray(logits, np.float64)
    z = z - z.max(1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].sum())


def evaluate_onnx(data: Any, folder: Path, limit: int | None = None) -> dict[str, float]:
    """-> {"val_accuracy" (a fraction), "val_loss"} of model.onnx's "logits" on the validation split."""
    n = onnx_eval.capped(len(data.val.y), limit)
    sess = onnx_eval.session(Path(folder) / "model.onnx")
    name = sess.get_inputs()[0].name
    hits, loss = 0, 0.0
    for i in range(0, n, onnx_eval.BATCH):  # normalised a batch at a time: a whole split as float32 is large
        y = data.val.y[i:min(n, i + onnx_eval.BATCH)]
        logits = sess.run(None, {name: calibration.images(data.val.x[i:i + len(y)], data.mean, data.std)})[0]
        hits, loss = hits + correct(logits, y), loss + cross_entropy_sum(logits, y)
    return {"val_accuracy": hits / max(n, 1), "val_loss": loss / max(n, 1)}
