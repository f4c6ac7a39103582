"""A version folder scored with ONNX Runtime on the validation split (models.contract.Family.quantisation): the
fp32 version and its int8 version are judged by this same function. numpy and ONNX Runtime only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort


def evaluate_onnx(data: Any, folder: Path, limit: int | None = None) -> dict[str, float]:
    session = ort.InferenceSession(str(Path(folder) / "model.onnx"), providers=["CPUExecutionProvider"])
    x, y = data.x_val[:limit], data.y_val[:limit]
    pred = session.run(None, {"features": x.astype(np.float32)})[0].reshape(-1)
    err = pred - y
    return {"val_mse": float(np.mean(err ** 2)), "val_mae": float(np.mean(np.abs(err)))}
