"""ONNX Runtime evaluation of a detection version (issue 20; numpy, pycocotools and ONNX Runtime only):
model.onnx on the letterboxed validation images of training.load_dataset's Prepared data, its boxes
through serving's post-processing, scored by COCO mAP as training.evaluate scores PyTorch's."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from models.common import calibration, onnx_eval
from models.detection.boxes import select
from models.detection.metrics import coco_map
from models.detection.serving import split_outputs

# what a run is measured with: every box over 0.01 (COCO's mAP rewards recall), class-wise NMS at 0.5
EVAL_PARAMS = {"score_threshold": 0.01, "iou_threshold": 0.5, "max_detections": 100}


def outputs_map(split: Any, outputs: np.ndarray, n_classes: int, layout: str = "dlserve") -> dict[str, float]:
    """A split's detector outputs [N, A, 4 + C] -> {"map", "map_50", "map_75"}: per image serving's
    split_outputs and select (NMS), then pycocotools against the split's boxes."""
    dets = []
    for i, row in enumerate(outputs):
        b, s, c = select(*split_outputs(row, layout), **EVAL_PARAMS)
        dets.extend((i, *box, float(sc), int(cl)) for box, sc, cl in zip(b, s, c, strict=True))
    return coco_map(split, dets, n_classes)


def evaluate_onnx(data: Any, folder: Path, limit: int | None = None) -> dict[str, float]:
    """-> {"val_map" (mAP@[.5:.95]), "val_map_50", "val_map_75"} of model.onnx on the validation split."""
    n = onnx_eval.capped(len(data.val.x), limit)
    split = dataclasses.replace(data.val, x=data.val.x[:n], boxes=data.val.boxes[:n], classes=data.val.classes[:n])
    sess = onnx_eval.session(Path(folder) / "model.onnx")
    out = np.concatenate([onnx_eval.run(sess, {"images": calibration.images(split.x[i:i + 64], [0.0] * 3, [1.0] * 3)},
                                        "predictions") for i in range(0, n, 64)]) if n else np.zeros((0, 0, 0))
    return {f"val_{k}": v for k, v in outputs_map(split, out, len(data.labels)).items()}
