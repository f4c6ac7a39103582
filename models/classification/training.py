"""Image classification with PyTorch (workers and tests only; the API never imports this).

    load_dataset(path, fmt, cfg) -> Prepared      train/val splits, labels, normalisation
    build(cfg, data) -> nn.Module                 LeNet-style CNN, ResNet or AirNet (networks.py)
    train(cfg, data, device, report, checkpoint=None, resume=None, init=None) -> (module, metrics)
                                                  the module is wrapped in TestTimeViews when cfg.tta asks
    evaluate(module, data, device) -> {"accuracy", "loss"}
    export_onnx(module, path, data)               input "input" [N,C,H,W] -> "logits" [N,K], opset 17
    example_inputs(data, n) / version_metadata(cfg, data)   for the parity check and the registry

`report(step, metrics)` is called after every optimiser step ({"epoch": fractional, "loss", "lr"}) and
after each epoch's validation ({"epoch", "val_loss", "val_accuracy"}). `checkpoint(state)` gets a
plain dict after each epoch; `resume=` that dict continues the run where it stopped, bit for bit
(augmentation draws from the same checkpointed generator as the shuffle). `init=` a state dict
(init_from): its backbone is loaded before training, a new head where the classes differ.
With `patience`, training stops after that many epochs without a better val_accuracy and the best
epoch's weights are the ones returned (and exported).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.classification import data as datasets
from models.classification import evaluation
from models.classification.config import Config
from models.classification.data import ImageSet, Loaded
from models.classification.networks import (
    AirNet,
    LeNet,
    ResNet,
    TestTimeViews,
    freeze_backbone,
    load_backbone,
    set_train_mode,
)
from models.common import calibration, loop
from models.common.normalise import Normalise
from models.common.onnx_export import export_batch_dynamic

OPSET = 17


@dataclass
class Prepared:
    labels: list[str]
    train: ImageSet
    val: ImageSet
    size: tuple[int, int]
    channels: int
    mean: list[float]
    std: list[float]


def load_dataset(path: Path, fmt: str, cfg: Config) -> Prepared:
    size = (cfg.image_size, cfg.image_size) if cfg.image_size else None
    return prepare(cfg, datasets.load(path, fmt, size, cfg.channels))


def prepare(cfg: Config, loaded: Loaded) -> Prepared:
    """Splits off validation (seeded, so a resumed run sees the same split) and measures mean/std."""
    if loaded.test is not None:
        train, val = loaded.train, loaded.test
    else:
        n = len(loaded.train.y)
        if n < 2:
            raise ValueError(f"the dataset has {n} image; at least 2 are needed to hold one out for validation")
        order = np.random.default_rng(cfg.seed).permutation(n)
        n_val = min(n - 1, max(1, round(n * cfg.val_fraction)))
        pick = lambda idx: ImageSet(loaded.train.x[idx], loaded.train.y[idx])  # noqa: E731
        train, val = pick(np.sort(order[n_val:])), pick(np.sort(order[:n_val]))
    pixels = train.x.reshape(-1, train.x.shape[-1]).astype(np.float64) / 255.0
    mean, std = pixels.mean(axis=0), np.maximum(pixels.std(axis=0), 1e-3)
    return Prepared(loaded.labels, train, val, tuple(train.x.shape[1:3]), train.x.shape[3],
                    [float(m) for m in mean], [float(s) for s in std])


def build(cfg: Config, data: Prepared) -> nn.Module:
    if min(data.size) < (AirNet.MIN_SIDE if cfg.arch == "airbench" else 4):
        raise ValueError(f"images of {data.size[0]}x{data.size[1]} are too small for {cfg.arch}; set image_size")
    if cfg.arch == "airbench":  # airbench's batch-norm momentum 0.4 at batch 1024, per image seen
        return AirNet(data.channels, len(data.labels), cfg.width, bn_momentum=1 - 0.6 ** (cfg.batch_size / 1024))
    if cfg.arch == "resnet":
        return ResNet(data.channels, len(data.labels), cfg.width, cfg.depth)
    return LeNet(data.channels, len(data.labels), data.size, cfg.width)


def steps_per_epoch(cfg: Config, data: Prepared) -> int:
    return math.ceil(len(data.train.y) / cfg.batch_size)


def total_steps(cfg: Config, data: Prepared) -> int:
    return cfg.epochs * steps_per_epoch(cfg, data)


# airbench: batch-norm biases learn at 64x the lr, with the same absolute weight decay
NORM_BIAS_LR_SCALE = 64.0


def _param_groups(cfg: Config, model: nn.Module) -> list[dict[str, Any]]:
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if cfg.arch != "airbench":
        return [{"params": [p for _, p in trainable]}]
    norm = [p for name, p in trainable if ".norm" in name]
    rest = [p for name, p in trainable if ".norm" not in name]
    return [g for g in ({"params": norm, "lr": cfg.lr * NORM_BIAS_LR_SCALE,
                         "weight_decay": cfg.weight_decay / NORM_BIAS_LR_SCALE}, {"params": rest}) if g["params"]]


def _optimizer(cfg: Config, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=bool(cfg.nesterov))
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _triangle(step: int, total: int) -> float:
    """airbench's schedule, a factor on the lr: 0.2 -> 1 over the first 23 % of the steps, then -> 0.07."""
    peak = max(1, round(0.23 * total))
    if step <= peak:
        return 0.2 + 0.8 * step / peak
    return 1.0 - 0.93 * min(step - peak, total - peak) / max(1, total - peak)


def _scheduler(cfg: Config, opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.scheduler == "onecycle":  # warm up over the first 15 %, then anneal to ~0 (cosine)
        max_lr = [g["lr"] for g in opt.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total + 1, pct_start=0.15,
                                                   div_factor=10, final_div_factor=100,
                                                   cycle_momentum=cfg.optimizer == "sgd")
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    if cfg.scheduler == "triangle":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _triangle(s, total))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


class _Augment:
    """Random crop (after zero padding) and horizontal flip of a uint8 batch [N, H, W, C], drawn from a
    CPU generator so that a resumed run draws the same. airbench: the padding reflects the image, and each
    image's flip is drawn once per run (from the seed) and inverted every other epoch, so every image is
    seen both ways round in any two epochs in a row."""

    def __init__(self, cfg: Config, data: Prepared, device: torch.device | str = "cpu"):
        # default: 4 px at 32x32 for photos (the CIFAR recipe), 2 px at 28x28 for digits and other grey images
        auto = 2 if cfg.arch == "airbench" else min(data.size) // (8 if data.channels == 3 else 14)
        self.pad = cfg.crop_padding if cfg.crop_padding is not None else auto
        self.flip = cfg.flip if cfg.flip is not None else data.channels == 3
        self.reflect = cfg.arch == "airbench" and self.pad < min(data.size)
        self.alternate: torch.Tensor | None = None  # [N] bool: the flip of each training image in even epochs
        if self.flip and cfg.arch == "airbench":
            drawn = torch.rand(len(data.train.y), generator=torch.Generator().manual_seed(cfg.seed)) < 0.5
            self.alternate = drawn.to(device)  # drawn on the CPU (device-independent), indexed where the batch is

    def __call__(self, x: torch.Tensor, gen: torch.Generator, idx: torch.Tensor | None = None,
                 epoch: int = 0) -> torch.Tensor:
        n, h, w, _ = x.shape
        if self.pad:
            p = self.pad
            dy = torch.randint(0, 2 * p + 1, (n, 1), generator=gen).to(x.device)
            dx = torch.randint(0, 2 * p + 1, (n, 1), generator=gen).to(x.device)
            rows = (dy + torch.arange(h, device=x.device))[:, :, None]  # [N, H, 1] in padded coordinates
            cols = (dx + torch.arange(w, device=x.device))[:, None, :]  # [N, 1, W]
            batch = torch.arange(n, device=x.device)[:, None, None]
            if self.reflect:  # index the image itself, mirrored at its edges
                x = x[batch, _reflect(rows - p, h), _reflect(cols - p, w)]
            else:
                x = F.pad(x, (0, 0, p, p, p, p))[batch, rows, cols]  # [N, H+2p, W+2p, C] -> [N, H, W, C]
        if self.flip:
            if self.alternate is not None and idx is not None:
                mask = self.alternate[idx] ^ bool(epoch % 2)
            else:
                mask = (torch.rand(n, generator=gen) < 0.5).to(x.device)
            x = torch.where(mask.view(-1, 1, 1, 1), x.flip(2), x)
        return x


def _reflect(i: torch.Tensor, size: int) -> torch.Tensor:
    """Indices outside [0, size) mirrored back in, without repeating the edge (F.pad's "reflect")."""
    i = i.abs()
    return torch.where(i >= size, 2 * (size - 1) - i, i)


class _Lookahead:
    """airbench's weight averaging: an average of the weights (and batch-norm statistics) that the
    network is reset to each time it is updated, so training goes on from the average. Created at the
    first update; the network is restored to it after each epoch, so a checkpoint of the network is
    also one of the average."""

    START_EPOCH = 3
    IMAGES_BETWEEN = 5120  # 5 steps of airbench's 1024-image batches
    DECAY = 0.95 ** 5

    def __init__(self, model: nn.Module):
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @classmethod
    def every(cls, cfg: Config) -> int:
        return max(1, round(cls.IMAGES_BETWEEN / cfg.batch_size))

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        for key, value in model.state_dict().items():
            if key in self.average:
                self.average[key].lerp_(value, 1 - decay)
        self.restore(model)

    @torch.no_grad()
    def restore(self, model: nn.Module) -> None:
        for key, value in model.state_dict().items():
            if key in self.average:
                value.copy_(self.average[key])


class _Run(loop.Recipe):
    """One run (models/common/loop.py): the cross-entropy of augmented batches, airbench's look-ahead
    average after each step from epoch 3, early stopping on val_accuracy."""

    lr_group = -1  # the weights' group (airbench's batch-norm group comes first)
    monitor = "val_accuracy"

    def __init__(self, cfg: Config, data: Prepared, device: torch.device, init: dict[str, torch.Tensor] | None,
                 resume: dict[str, Any] | None):
        self.cfg, self.data, self.device = cfg, data, device
        model = build(cfg, data)
        self.initialise(model, init, resume, load_backbone)
        self.airnet = model if isinstance(model, AirNet) else None
        if self.airnet is not None and init is None and resume is None:
            self.airnet.init_whitening(Normalise(data, "cpu")(torch.from_numpy(data.train.x[:5000])))
        self.frozen = cfg.freeze_backbone and (init is not None or resume is not None)
        if self.frozen:
            freeze_backbone(model)
        model = model.to(device)
        if self.airnet is not None:  # oneDNN's convolutions run about 1.6x faster so on the CPU
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = _optimizer(cfg, _param_groups(cfg, model))
        self.total = max(1, total_steps(cfg, data))
        self.scheduler = _scheduler(cfg, self.optimizer, self.total)
        self.lookahead: _Lookahead | None = None
        self.epochs, self.steps_per_epoch, self.patience = cfg.epochs, steps_per_epoch(cfg, data), cfg.patience
        self.examples, self.batch_size = len(data.train.y), cfg.batch_size
        self.x = torch.from_numpy(data.train.x).to(device)  # uint8 [N, H, W, C], normalised per batch
        self.y = torch.from_numpy(data.train.y).to(device)
        self.normalise, self.augment = Normalise(data, device), _Augment(cfg, data, device)
        self.amp = cfg.amp and device.type == "cuda"

    def start_epoch(self, epoch: int) -> None:
        set_train_mode(self.model, self.frozen)
        if self.airnet is not None:
            self.airnet.whiten.bias.requires_grad_(epoch < AirNet.WHITEN_BIAS_EPOCHS and not self.frozen)
        self.total_loss = torch.zeros((), device=self.device)

    def train_step(self, idx: torch.Tensor, epoch: int, i: int) -> loop.Step:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.model(self.normalise(self.augment(self.x[idx], self.rng, idx, epoch)))
        loss = F.cross_entropy(logits.float(), self.y[idx], label_smoothing=self.cfg.label_smoothing)
        self.total_loss += loss.detach()
        return loop.Step(loss, {"loss": loss.item()})

    def after_step(self, step: int, epoch: int) -> None:
        if self.cfg.lookahead and epoch >= _Lookahead.START_EPOCH and step % _Lookahead.every(self.cfg) == 0:
            if self.lookahead is None:
                self.lookahead = _Lookahead(self.model)
            else:  # averages little at first, then ever more strongly
                self.lookahead.update(self.model, _Lookahead.DECAY * (step / self.total) ** 3)

    def end_epoch(self, done: int, metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        if self.lookahead is not None:
            self.lookahead.restore(self.model)  # the network is the average from here on
        val = evaluate(self.model, self.data, self.device)
        metrics = {"train_loss": float(self.total_loss) / self.steps_per_epoch, "val_loss": val["loss"],
                   "val_accuracy": val["accuracy"], **self.init_metrics}
        return metrics, {"epoch": float(done), "val_loss": val["loss"], "val_accuracy": val["accuracy"]}

    def state(self) -> dict[str, Any]:
        return {"lookahead": self.lookahead is not None}

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("lookahead"):  # a checkpoint's network is the average (restored after each epoch)
            self.lookahead = _Lookahead(self.model)

    def finish(self, metrics: dict[str, float]) -> tuple[nn.Module, dict[str, float]]:
        if self.cfg.tta != "none":  # the per-epoch validation saw one view; the caller evaluates all of them
            metrics = {**metrics, "val_accuracy_one_view": metrics.get("val_accuracy", 0.0)}
            return TestTimeViews(self.model, self.cfg.tta), metrics
        return self.model, metrics

    @staticmethod
    def read_checkpoint(state: dict[str, Any], cfg: Config) -> dict[str, Any]:
        best = state.get("best")
        if state.get("loop") is None and best and "accuracy" in best:  # written before models/common/loop.py
            state = {**state, "best": {"value": best["accuracy"] if best["state"] is not None else None,
                                       **{k: v for k, v in best.items() if k != "accuracy"}}}
        return state


train = loop.trainer(_Run)  # the module it returns is wrapped in TestTimeViews when cfg.tta asks


@torch.no_grad()
def evaluate(model: nn.Module, data: Prepared, device: torch.device | str, batch_size: int = 512) -> dict[str, float]:
    """Accuracy and mean cross-entropy on the validation split."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    normalise = Normalise(data, device)
    correct, loss_sum, n = 0, 0.0, len(data.val.y)
    for i in range(0, n, batch_size):
        xb = normalise(torch.from_numpy(data.val.x[i:i + batch_size]).to(device))
        yb = torch.from_numpy(data.val.y[i:i + batch_size]).to(device)
        logits = model(xb)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += evaluation.correct(logits.float().cpu().numpy(), data.val.y[i:i + batch_size])
    model.train(was_training)
    return {"accuracy": correct / n, "loss": loss_sum / n}


def example_inputs(data: Prepared, n: int = 32) -> dict[str, np.ndarray]:
    """A held batch from the validation split, as the ONNX model takes it (float32 [n, C, H, W])."""
    return {"input": calibration.images(data.val.x[:n], data.mean, data.std)}


def calibration_batches(data: Prepared, count: int, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Training images as the ONNX model takes them (models.contract.Family.calibration)."""
    for idx in calibration.rows(len(data.train.y), count, batch_size):
        yield {"input": calibration.images(data.train.x[idx], data.mean, data.std)}


def export_onnx(model: nn.Module, path: Path, data: Prepared) -> None:
    """Writes one self-contained .onnx file with a dynamic batch axis."""
    model = model.to("cpu").eval()
    dummy = torch.zeros(1, data.channels, *data.size)
    export_batch_dynamic(model, (dummy,), path, ["input"], ["logits"], OPSET)


def version_metadata(cfg: Config, data: Prepared) -> dict[str, Any]:
    return {"labels": list(data.labels), "preprocessing": {
        "size": list(data.size), "channels": data.channels, "mean": data.mean, "std": data.std}}
