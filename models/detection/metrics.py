"""COCO mAP of a detection run's validation split, by pycocotools (numpy; pycocotools: workers only)."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np


def coco_map(split: Any, dets: list[tuple], n_classes: int) -> dict[str, float]:
    """dets: (image index, x1, y1, x2, y2, score, class) -> {"map", "map_50", "map_75"} by pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    h, w = split.x.shape[1:3]
    gt = {"images": [{"id": i, "width": w, "height": h} for i in range(len(split.x))],
          "categories": [{"id": c} for c in range(n_classes)], "annotations": []}
    for i, (bs, cs) in enumerate(zip(split.boxes, split.classes, strict=True)):
        for b, c in zip(bs, cs, strict=True):
            bw, bh = float(b[2] - b[0]), float(b[3] - b[1])
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i, "category_id": int(c),
                                      "bbox": [float(b[0]), float(b[1]), bw, bh], "area": bw * bh, "iscrowd": 0})
    if not gt["annotations"]:
        return {"map": 0.0, "map_50": 0.0, "map_75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        if not dets:
            return {"map": 0.0, "map_50": 0.0, "map_75": 0.0}
        arr = np.asarray([[d[0], d[1], d[2], d[3] - d[1], d[4] - d[2], d[5], d[6]] for d in dets], np.float64)
        result = coco.loadRes(arr)
        ev = COCOeval(coco, result, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [max(float(v), 0.0) for v in ev.stats[:3]]  # -1 where undefined
    return {"map": stats[0], "map_50": stats[1], "map_75": stats[2]}
