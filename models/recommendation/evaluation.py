"""Held-out scores of a recommendation model (issue 20; numpy and ONNX Runtime only): one function measures
predicted rows however they were computed, PyTorch's in training.evaluate or the version's model.onnx in
evaluate_onnx, on the held-out ratings and leave-one-out items of training.load_dataset's Prepared data."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.common import onnx_eval

NEG_SAMPLES = 99  # leave-one-out: the held-out item ranked among this many unrated items

Predict = Callable[[np.ndarray], np.ndarray]  # known user indices [n] -> predicted rows [n, I]


def scores(data: Any, predict: Predict, ranking: bool = True, limit: int | None = None) -> dict[str, float]:
    """RMSE, MAE (and the mean's RMSE) of the held-out ratings; with `ranking`, leave-one-out HR@10 and
    NDCG@10. `limit` caps the held-out ratings and the leave-one-out users measured (the first ones)."""
    n = onnx_eval.capped(len(data.val_u), limit)
    val_u, val_i, val_r = data.val_u[:n], data.val_i[:n], data.val_r[:n]
    uniq, inv = np.unique(val_u, return_inverse=True)
    rows = predict(uniq)
    pred = rows[inv, val_i].astype(np.float64) if len(val_u) else np.zeros(0)
    err = pred - val_r
    out = {"rmse": float(np.sqrt(np.mean(err ** 2))) if len(err) else float("nan"),
           "mae": float(np.mean(np.abs(err))) if len(err) else float("nan"),
           "baseline_rmse": float(np.sqrt(np.mean((val_r - data.mean) ** 2))) if len(err) else float("nan"),
           "held_out": int(len(err))}
    if ranking:
        out.update(leave_one_out(data, predict, onnx_eval.capped(len(data.loo_u), limit)))
    return out


def leave_one_out(data: Any, predict: Predict, n: int, k: int = 10) -> dict[str, float]:
    """The first n users' held-out item ranked among NEG_SAMPLES items the user never rated (seeded)."""
    if n == 0:
        return {"hr_at_10": float("nan"), "ndcg_at_10": float("nan")}
    rng = np.random.default_rng(1234)
    rows = predict(data.loo_u[:n])
    seen = data.seen[data.loo_u[:n]]
    hits, ndcg = [], []
    for row in range(n):
        target = data.loo_i[row]
        pool = np.nonzero(~seen[row])[0]
        pool = pool[pool != target]
        negs = rng.choice(pool, min(NEG_SAMPLES, len(pool)), replace=False) if len(pool) else pool
        scores = rows[row]
        rank = int(np.sum(scores[negs] > scores[target]))
        hits.append(rank < k)
        ndcg.append(1 / math.log2(rank + 2) if rank < k else 0.0)
    return {"hr_at_10": float(np.mean(hits)), "ndcg_at_10": float(np.mean(ndcg))}


def evaluate_onnx(data: Any, folder: Path, limit: int | None = None) -> dict[str, float]:
    """model.onnx's "predicted" rows for known users (every item unrated in the feed: the graph reads a
    known user's ratings from its own matrix) -> {"val_rmse", "val_mae", ..., "val_ndcg_at_10"}."""
    sess = onnx_eval.session(Path(folder) / "model.onnx")
    items = data.matrix.shape[1]

    def predict(users: np.ndarray) -> np.ndarray:
        users = users.astype(np.int64)
        return onnx_eval.run(sess, {"user": users, "ratings": np.zeros((len(users), items), np.float32)},
                             "predicted")

    return {f"val_{k}": v for k, v in scores(data, predict, limit=limit).items()}
