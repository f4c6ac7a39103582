"""Box geometry shared by training and serving (numpy/Pillow only): letterboxing, non-maximum
suppression, and turning a detector's per-location outputs into a short list of detections."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How an image of (height, width) was placed on a size x size canvas: x' = x * sx + px."""

    height: int
    width: int
    sx: float
    sy: float
    px: int
    py: int

    @staticmethod
    def fit(height: int, width: int, size: tuple[int, int]) -> Letterbox:
        th, tw = size
        scale = min(th / height, tw / width)
        nh, nw = max(1, round(height * scale)), max(1, round(width * scale))
        return Letterbox(height, width, nw / width, nh / height, (tw - nw) // 2, (th - nh) // 2)

    def apply(self, img: np.ndarray, size: tuple[int, int], pad_value: int = PAD_VALUE) -> np.ndarray:
        """uint8 [H, W, 3] -> [size[0], size[1], 3]."""
        nh, nw = round(self.height * self.sy), round(self.width * self.sx)
        if img.shape[:2] != (nh, nw):
            img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
        out = np.full((size[0], size[1], 3), pad_value, np.uint8)
        out[self.py:self.py + nh, self.px:self.px + nw] = img
        return out

    def forward(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy in the original image -> xyxy on the canvas."""
        return boxes * [self.sx, self.sy, self.sx, self.sy] + [self.px, self.py, self.px, self.py]

    def backward(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy on the canvas -> xyxy in the original image, clipped to it."""
        out = (boxes - [self.px, self.py, self.px, self.py]) / [self.sx, self.sy, self.sx, self.sy]
        return np.clip(out, 0, [self.width, self.height, self.width, self.height])


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box [4] with boxes [K, 4]."""
    ix1, iy1 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    ix2, iy2 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, limit: int) -> np.ndarray:
    """Greedy non-maximum suppression; indices of kept boxes, best first, at most `limit`."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < limit:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        order = rest[iou(boxes[i], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, np.int64)


def select(boxes: np.ndarray, scores: np.ndarray, score_threshold: float, iou_threshold: float,
           max_detections: int, max_candidates: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """boxes [A, 4] xyxy, scores [A, C] -> (boxes [D, 4], scores [D], classes [D]) after class-wise NMS.
    Every (location, class) pair over the threshold is a candidate (a location may propose two classes)."""
    loc, cls = np.nonzero(scores > score_threshold)
    conf = scores[loc, cls]
    if conf.size > max_candidates:
        top = np.argpartition(-conf, max_candidates - 1)[:max_candidates]
        loc, cls, conf = loc[top], cls[top], conf[top]
    cand = boxes[loc].astype(np.float64)
    # class-wise NMS in one pass: boxes of different classes are moved apart so they never overlap
    offset = cls[:, None] * (float(np.abs(cand).max(initial=0.0)) * 2 + 1)
    keep = nms(cand + offset, conf, iou_threshold, max_detections)
    return cand[keep], conf[keep], cls[keep]
