"""Object detection with PyTorch (workers and tests only; the API never imports this).

    load_dataset(path, fmt, cfg) -> Prepared     letterboxed images and boxes, train/val splits
    build(cfg, data) -> nn.Module                a small ResNet + FPN, anchor-free head at stride 4
    train(cfg, data, device, report, checkpoint=None, resume=None) -> (module, metrics)
    evaluate(module, data, device) -> {"map", "map_50", "map_75", "loss"} (COCO, pycocotools)
    export_onnx(module, path, data)              "images" [N,3,S,S] -> "predictions" [N,A,4+C], opset 17
    example_inputs(data, n) / version_metadata(cfg, data)

The head is CenterNet/TTFNet-style: per stride-4 location, C class heat-map scores (Gaussian targets at
object centres, penalty-reduced focal loss) and the distances to the four sides of the box
(GIoU loss over the centre region of each object). Boxes are decoded in the graph; suppression runs in
numpy (serving.py), the same code the evaluation here uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from models.common import calibration, loop
from models.common.onnx_export import export_batch_dynamic
from models.detection import data as datasets
from models.detection import evaluation
from models.detection.boxes import PAD_VALUE, Letterbox
from models.detection.config import Config
from models.detection.networks import STRIDE, Detector

OPSET = 17


@dataclass
class Split:
    x: np.ndarray  # uint8 [N, S, S, 3], letterboxed
    boxes: list[np.ndarray]  # per image [K, 4] xyxy on the canvas
    classes: list[np.ndarray]  # per image [K] int64


@dataclass
class Prepared:
    labels: list[str]
    train: Split
    val: Split
    size: tuple[int, int]


def load_dataset(path: Path, fmt: str, cfg: Config) -> Prepared:
    parsed = datasets.parse(Path(path), fmt)
    size = (cfg.image_size, cfg.image_size)
    records, val = parsed.train, parsed.val
    if val is None:
        n = len(records)
        if n < 2:
            raise ValueError(f"the dataset has {n} image; at least 2 are needed to hold one out for validation")
        order = np.random.default_rng(cfg.seed).permutation(n)
        n_val = min(n - 1, max(1, round(n * cfg.val_fraction)))
        records, val = [records[i] for i in np.sort(order[n_val:])], [records[i] for i in np.sort(order[:n_val])]
    return Prepared(parsed.labels, _letterbox_all(records, size), _letterbox_all(val, size), size)


def _letterbox_all(records: list[datasets.Record], size: tuple[int, int]) -> Split:
    x = np.empty((len(records), size[0], size[1], 3), np.uint8)
    boxes, classes = [], []
    for i, r in enumerate(records):
        lb = Letterbox.fit(r.height, r.width, size)
        x[i] = lb.apply(datasets.read_image(r), size, PAD_VALUE)
        boxes.append(lb.forward(r.boxes.astype(np.float64)).astype(np.float32))
        classes.append(r.classes)
    return Split(x, boxes, classes)


def build(cfg: Config, data: Prepared) -> nn.Module:
    return Detector(len(data.labels), data.size, cfg.width)


# -- targets and loss -----------------------------------------------------------------------------------
def targets(boxes: list[np.ndarray], classes: list[np.ndarray], n_classes: int, size: tuple[int, int]):
    """Per image: a Gaussian heat map per class [C, h, w] (1 at each object's centre cell), the box each
    location regresses [4, h, w] xyxy pixels, and its weight [h, w] (the Gaussian of the box it belongs to)."""
    h, w = size[0] // STRIDE, size[1] // STRIDE
    n = len(boxes)
    heat = np.zeros((n, n_classes, h, w), np.float32)
    box_t = np.zeros((n, 4, h, w), np.float32)
    weight = np.zeros((n, h, w), np.float32)
    gx = (np.arange(w, dtype=np.float32) + 0.5) * STRIDE
    gy = (np.arange(h, dtype=np.float32) + 0.5) * STRIDE
    for i, (bs, cs) in enumerate(zip(boxes, classes, strict=True)):
        if not len(bs):
            continue
        areas = (bs[:, 2] - bs[:, 0]) * (bs[:, 3] - bs[:, 1])
        for j in np.argsort(-areas):  # smaller boxes are written last and own the locations they share
            x1, y1, x2, y2 = bs[j]
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            ci, cj = min(int(cy / STRIDE), h - 1), min(int(cx / STRIDE), w - 1)
            px, py = (cj + 0.5) * STRIDE, (ci + 0.5) * STRIDE  # the centre cell, where the heat map peaks
            sx, sy = max((x2 - x1) * 0.54 / 6, 0.8), max((y2 - y1) * 0.54 / 6, 0.8)
            g = np.exp(-((gx[None] - px) ** 2) / (2 * sx * sx) - ((gy[:, None] - py) ** 2) / (2 * sy * sy))
            heat[i, cs[j]] = np.maximum(heat[i, cs[j]], g)
            heat[i, cs[j], ci, cj] = 1.0
            inside = (gx[None] > x1) & (gx[None] < x2) & (gy[:, None] > y1) & (gy[:, None] < y2)
            own = inside & (g > 0.05)
            own[ci, cj] = True
            box_t[i][:, own] = bs[j][:, None]
            weight[i][own] = g[own] * np.log(max(areas[j], 2.0))
    return heat, box_t, weight


def focal_loss(logits: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, summed and divided by the number of objects."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    pos_loss = -torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = -torch.log(1 - p) * p ** 2 * (1 - heat) ** 4 * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


def giou_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """pred, target [K, 4] xyxy; weighted mean of 1 - GIoU."""
    ix1, iy1 = torch.max(pred[:, 0], target[:, 0]), torch.max(pred[:, 1], target[:, 1])
    ix2, iy2 = torch.min(pred[:, 2], target[:, 2]), torch.min(pred[:, 3], target[:, 3])
    inter = (ix2 - ix1).clamp(min=0) * (iy2 - iy1).clamp(min=0)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    union = area(pred) + area(target) - inter
    ex1, ey1 = torch.min(pred[:, 0], target[:, 0]), torch.min(pred[:, 1], target[:, 1])
    ex2, ey2 = torch.max(pred[:, 2], target[:, 2]), torch.max(pred[:, 3], target[:, 3])
    enclose = (ex2 - ex1) * (ey2 - ey1)
    giou = inter / union.clamp(min=1e-6) - (enclose - union) / enclose.clamp(min=1e-6)
    return ((1 - giou) * weight).sum() / weight.sum().clamp(min=1e-6)


def loss_of(model: Detector, x: torch.Tensor, heat: torch.Tensor, box_t: torch.Tensor,
            weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logits, sides = model.raw(x)
    n, _, h, w = sides.shape
    ltrb = sides.permute(0, 2, 3, 1).reshape(n, h * w, 4) * STRIDE
    c = model.centres.unsqueeze(0)
    pred = torch.cat([c - ltrb[..., :2], c + ltrb[..., 2:]], -1).reshape(-1, 4)
    wt = weight.reshape(-1)
    m = wt > 0
    cls = focal_loss(logits, heat)
    reg = giou_loss(pred[m], box_t.permute(0, 2, 3, 1).reshape(-1, 4)[m], wt[m]) if m.any() else pred.sum() * 0
    return cls + 5.0 * reg, cls, reg


# -- training -------------------------------------------------------------------------------------------
def steps_per_epoch(cfg: Config, data: Prepared) -> int:
    return math.ceil(len(data.train.x) / cfg.batch_size)


def total_steps(cfg: Config, data: Prepared) -> int:
    return cfg.epochs * steps_per_epoch(cfg, data)


def _optimizer(cfg: Config, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _schedule(cfg: Config, total: int) -> Callable[[int], float]:
    warm = min(cfg.warmup_steps, max(total // 4, 1))

    def factor(s: int) -> float:
        if s < warm:
            return (s + 1) / warm
        if cfg.scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(s - warm, total - warm) / max(total - warm, 1)))
        return 1.0
    return factor


def _batch(split: Split, idx: np.ndarray, n_classes: int, size, device, shift: np.ndarray | None = None):
    x = split.x[idx]
    boxes = [split.boxes[i] for i in idx]
    if shift is not None:  # translate each image by whole pixels, dropping boxes pushed out of it
        x, boxes = x.copy(), list(boxes)
        classes = [split.classes[i] for i in idx]
        for k, (dx, dy) in enumerate(shift):
            x[k] = np.roll(x[k], (dy, dx), (0, 1))
            if dy > 0:
                x[k, :dy] = PAD_VALUE
            elif dy < 0:
                x[k, dy:] = PAD_VALUE
            if dx > 0:
                x[k, :, :dx] = PAD_VALUE
            elif dx < 0:
                x[k, :, dx:] = PAD_VALUE
            b = boxes[k] + np.array([dx, dy, dx, dy], np.float32)
            c = np.clip(b, 0, [size[1], size[0], size[1], size[0]])
            keep = ((c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])) >= 0.6 * ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
            boxes[k], classes[k] = c[keep], classes[k][keep]
    else:
        classes = [split.classes[i] for i in idx]
    heat, box_t, weight = targets(boxes, classes, n_classes, size)
    t = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    xb = t(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().div_(255.0)
    return xb, t(heat), t(box_t), t(weight)


class _Run(loop.Recipe):
    """One run (models/common/loop.py): focal + GIoU loss of letterboxed batches, each image shifted by
    whole pixels (`translate`), gradients clipped at norm 10."""

    shuffle = "numpy"  # the order and the shifts, from one generator
    clip_norm = 10.0

    def __init__(self, cfg: Config, data: Prepared, device: torch.device, init: None, resume: dict[str, Any] | None):
        self.data, self.device = data, device
        self.model = build(cfg, data).to(device)
        self.optimizer = _optimizer(cfg, self.model.parameters())
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           _schedule(cfg, max(1, total_steps(cfg, data))))
        self.epochs, self.steps_per_epoch = cfg.epochs, steps_per_epoch(cfg, data)
        self.examples, self.batch_size = len(data.train.x), cfg.batch_size
        self.max_shift = int(cfg.translate * data.size[0])

    def start_epoch(self, epoch: int) -> None:
        self.model.train()
        self.total_loss = 0.0

    def train_step(self, idx: np.ndarray, epoch: int, i: int) -> loop.Step:
        m = self.max_shift
        shift = self.rng.integers(-m, m + 1, (len(idx), 2)) if m else None
        loss, cls, reg = loss_of(self.model, *_batch(self.data.train, idx, len(self.data.labels), self.data.size,
                                                      self.device, shift))
        self.total_loss += loss.item()
        return loop.Step(loss, {"loss": loss.item(), "loss_cls": cls.item(), "loss_box": reg.item()})

    def end_epoch(self, done: int, metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        val = {f"val_{k}": v for k, v in evaluate(self.model, self.data, self.device).items()}
        return {"train_loss": self.total_loss / self.steps_per_epoch, **val}, {"epoch": float(done), **val}


train = loop.trainer(_Run)


# -- evaluation -----------------------------------------------------------------------------------------
@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, device, batch_size: int = 64) -> np.ndarray:
    """uint8 [N, S, S, 3] -> the model's output [N, A, 4 + C] as numpy."""
    outs = []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i:i + batch_size]).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        outs.append(model(xb).cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 0, 0), np.float32)


@torch.no_grad()
def evaluate(model: nn.Module, data: Prepared, device: torch.device | str) -> dict[str, float]:
    """COCO mAP@[.5:.95], mAP@.5, mAP@.75 on the validation split (pycocotools), with the serving
    post-processing (score >= 0.01, class-wise NMS at IoU 0.5, 100 detections), and the validation loss."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    scores = evaluation.outputs_map(data.val, predict(model, data.val.x, device), len(data.labels))
    loss_sum, n = 0.0, len(data.val.x)
    for i in range(0, n, 64):
        idx = np.arange(i, min(i + 64, n))
        loss_sum += loss_of(model, *_batch(data.val, idx, len(data.labels), data.size, device))[0].item() * len(idx)
    model.train(was_training)
    return {**scores, "loss": loss_sum / max(n, 1)}


# -- export -----------------------------------------------------------------------------------------------
def example_inputs(data: Prepared, n: int = 32) -> dict[str, np.ndarray]:
    return {"images": calibration.images(data.val.x[:n], [0.0] * 3, [1.0] * 3)}


def calibration_batches(data: Prepared, count: int, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Letterboxed training images as the ONNX model takes them (models.contract.Family.calibration)."""
    for idx in calibration.rows(len(data.train.x), count, batch_size):
        yield {"images": calibration.images(data.train.x[idx], [0.0] * 3, [1.0] * 3)}


def export_onnx(model: nn.Module, path: Path, data: Prepared) -> None:
    model = model.to("cpu").eval()
    dummy = torch.zeros(1, 3, *data.size)
    export_batch_dynamic(model, (dummy,), path, ["images"], ["predictions"], OPSET)


def version_metadata(cfg: Config, data: Prepared) -> dict[str, Any]:
    return {"layout": "dlserve", "labels": list(data.labels),
            "preprocessing": {"size": list(data.size), "pad_value": PAD_VALUE, "letterbox": True}}
