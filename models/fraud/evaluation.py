"""ONNX Runtime evaluation of a fraud version (issue 20; numpy and ONNX Runtime only): the version's
model.onnx scores the validation split of training.load_dataset's Prepared data, measured by the same
function as training.evaluate's PyTorch scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.common import onnx_eval
from models.fraud import metrics as M


def measure(data: Any, s: np.ndarray, n: int | None = None) -> tuple[float, str, dict[str, Any]]:
    """Scores of the first n validation rows (all by default) -> (threshold chosen on them, how it was
    chosen, the metrics at it): training.evaluate and evaluate_onnx both end here."""
    y = data.y_val[:len(s) if n is None else n]
    threshold, rule = M.choose_threshold(y, s, data.negative_weight, data.target_precision, data.target_recall)
    return threshold, rule, M.report(y, s, threshold, data.negative_weight)


def evaluate_onnx(data: Any, folder: Path, limit: int | None = None) -> dict[str, float]:
    """model.onnx's "scores" column 0 (the fraud score) on the raw validation rows -> the run's val_ metrics
    (val_roc_auc, val_pr_auc, ...; the threshold is chosen on these scores, as training does)."""
    n = onnx_eval.capped(len(data.y_val), limit)
    sess = onnx_eval.session(Path(folder) / "model.onnx")
    out = onnx_eval.run(sess, {"features": data.x_val[:n].astype(np.float32)}, "scores")
    _, _, report = measure(data, out[:, 0].astype(np.float64), n)
    return {f"val_{k}": v for k, v in report.items()}
