"""What every family's evaluation.py (ONNX Runtime scoring of a version folder, issue 20) shares: the CPU
session it opens and the batched run of a one-graph model (numpy and ONNX Runtime only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

BATCH = 256


def session(path: Path) -> Any:
    """A CPU session of one graph: the evaluation of a parent and of its int8 child must run on the same
    provider, whatever the machine has, so that the gate compares the models and not the kernels."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run(sess: Any, feeds: dict[str, np.ndarray], output: str, batch: int = BATCH) -> np.ndarray:
    """One output of `sess` over feeds of any number of rows, `batch` rows at a time, concatenated."""
    n = len(next(iter(feeds.values())))
    parts = [sess.run([output], {k: v[i:i + batch] for k, v in feeds.items()})[0] for i in range(0, n, batch)]
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


def capped(n: int, limit: int | None) -> int:
    """How many validation rows an evaluation with `limit` scores (all when None)."""
    return n if limit is None else max(0, min(n, int(limit)))
