"""Hyperparameters of an image-classification run (stdlib only: the API validates job configs with it).

The defaults train the LeNet-style baseline well on MNIST-like data (see BENCHMARKS.md). For colour photos
(CIFAR-10) arch=airbench brings its whole recipe: every key left out takes the value in AIRBENCH, which is
Keller Jordan's airbench94 (2024) restated for a mean loss at any batch size (BENCHMARKS.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# init_from: a registered version "name:3" or "name@production", or a weights file in the dataset archive
from models.common.checks import REGISTRY_REF, WEIGHT_SUFFIXES, ConfigError, at_least_two, same_backbone

INIT_FROM_TASKS = ("classification",)
MIN_SIDE = {"airbench": 16, "lenet": 4, "resnet": 4}  # the smallest image side each network takes

# Keys left out (None) take these; lr None is 1.5 per 1024 images of a batch for airbench (the linear rule).
# airbench94's numbers, "per 1024 examples" with a summed loss (lr 11.5, momentum 0.85, weight decay 0.0153),
# are these for PyTorch's SGD on a mean loss: lr = 11.5 / (1 + 1 / (1 - 0.85)) * batch / 1024, weight decay
# 0.0153 / 11.5.
LENET_RESNET = {"epochs": 10, "batch_size": 64, "lr": 1e-3, "optimizer": "adam", "momentum": 0.9, "nesterov": False,
                "weight_decay": 0.0, "scheduler": "cosine", "label_smoothing": 0.0, "width": 32, "lookahead": False,
                "tta": "none"}
AIRBENCH = {"epochs": 12, "batch_size": 256, "lr": None, "optimizer": "sgd", "momentum": 0.85, "nesterov": True,
            "weight_decay": 0.0153 / 11.5, "scheduler": "triangle", "label_smoothing": 0.2, "width": 64,
            "lookahead": True, "tta": "flip_translate"}


@dataclass
class Config:
    # lenet: LeNet-5 style CNN; resnet: He et al.'s CIFAR ResNet; airbench: airbench94's net (a frozen whitening
    # conv set from the data's patch covariance, three conv-pool-BN-GELU groups of width w, 4w, 4w, identity-
    # initialised convs) with its training: batch-norm biases at 64x the lr, Lookahead weight averaging, the
    # triangle schedule, reflect-padded translation, flips that alternate each epoch, and test-time views.
    # Every key that defaults to None below and is left out takes its arch's value (LENET_RESNET or AIRBENCH).
    arch: Literal["lenet", "resnet", "airbench"] = "lenet"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None  # the peak lr for onecycle and triangle
    optimizer: Literal["adam", "adamw", "sgd"] | None = None
    momentum: float | None = None  # sgd only
    nesterov: bool | None = None  # sgd only
    weight_decay: float | None = None
    # per step; cosine decays lr to 0 over the run; triangle rises from 0.2 lr to lr at 23 % of the run, then
    # falls to 0.07 lr (airbench's, meant to be used with lookahead)
    scheduler: Literal["cosine", "onecycle", "triangle", "none"] | None = None
    label_smoothing: float | None = None
    # Lookahead: from the fourth epoch on, every 5120 images the weights are pulled into a running average
    # whose weight grows as (step / steps)^3, and training continues from the average
    lookahead: bool | None = None
    # test-time views of the exported (served) model, whose logits it averages: flip (mirror), or
    # flip_translate (airbench's six: mirror x {as is, 1 px up-left, 1 px down-right}). The per-epoch
    # val_accuracy is of one view (cheap); the run's final val_accuracy is of the served model.
    tta: Literal["none", "flip", "flip_translate"] | None = None
    image_size: int | None = None  # square side; None: the dataset's most common height
    channels: Literal[1, 3] | None = None  # None: 1 when every image is grey, else 3
    val_fraction: float = 0.1  # ignored for npz files in the Keras layout: x_test/y_test validate
    seed: int = 0
    width: int | None = None  # lenet: first conv (the second has 2x); resnet, airbench: first stage (then 2x or 4x)
    depth: int = 20  # resnet only: 6n+2 layers, n basic blocks (with batch norm) in each of 3 stages
    # random crop after zero padding (airbench: reflect padding); None: side // 8 (colour), // 14 (grey),
    # airbench 2 px; 0: off
    crop_padding: int | None = None
    flip: bool | None = None  # horizontal flip; None: on for colour images, off for grey (digits)
    amp: bool = True  # bfloat16 autocast on a GPU; no effect on the CPU
    patience: int | None = None  # early stopping: stop after this many epochs without a better val_accuracy
    init_from: str | None = None  # "name:version" / "name@alias" of a classification version, or a weights file
    freeze_backbone: bool = False  # with init_from: train the new head only

    def __post_init__(self) -> None:
        for key, value in (AIRBENCH if self.arch == "airbench" else LENET_RESNET).items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.lr is None:  # airbench: the linear rule
            self.lr = 1.5 * self.batch_size / 1024
        checks = [
            ("epochs", 1 <= self.epochs <= 10_000, "must be between 1 and 10000"),
            ("batch_size", 1 <= self.batch_size <= 65_536, "must be between 1 and 65536"),
            ("lr", 0 < self.lr <= 10, "must be > 0 and <= 10"),
            ("momentum", 0 <= self.momentum < 1, "must be >= 0 and < 1"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "must be >= 0 and < 1"),
            ("image_size", self.image_size is None or 8 <= self.image_size <= 512, "must be between 8 and 512"),
            ("val_fraction", 0 < self.val_fraction < 1, "must be > 0 and < 1"),
            ("width", 1 <= self.width <= 1024, "must be between 1 and 1024"),
            ("nesterov", not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0),
             "needs optimizer sgd with momentum > 0"),
            ("depth", 8 <= self.depth <= 200 and (self.depth - 2) % 6 == 0,
             "must be 6n+2 between 8 and 200 (8, 14, 20, 32, 44, 56, 110)"),
            ("crop_padding", self.crop_padding is None or 0 <= self.crop_padding <= 64, "must be between 0 and 64"),
            ("patience", self.patience is None or self.patience >= 1, "must be >= 1"),
            ("init_from", self.init_from is None or bool(REGISTRY_REF.match(self.init_from))
             or (self.init_from.lower().endswith(WEIGHT_SUFFIXES) and ".." not in self.init_from
                 and not self.init_from.startswith(("/", "\\"))),
             "must be a registered version 'name:3' or 'name@alias', or the name of a weights file "
             "(.safetensors, .pt, .pth) in the dataset archive"),
            ("freeze_backbone", not self.freeze_backbone or self.init_from is not None, "needs init_from"),
        ]
        for name, ok, message in checks:
            if not ok:
                raise ValueError(f"{name} {message} (got {getattr(self, name)!r})")


def _side(cfg: Config, stats: dict[str, Any]) -> list[int] | None:
    if cfg.image_size:
        return [cfg.image_size, cfg.image_size]
    common = (stats.get("image_sizes") or {}).get("most_common")
    return list(common) if isinstance(common, list) and len(common) == 2 else None


def check_against_dataset(cfg: Config, stats: dict[str, Any]) -> None:
    """What models/classification/training.py's prepare and build would refuse once the job ran."""
    at_least_two(stats, "rows", "image(s)", len(stats.get("splits") or {}) > 1)
    side = _side(cfg, stats)
    if side is not None and min(side) < MIN_SIDE[cfg.arch]:
        raise ConfigError("image_size", f"images of {side[0]}x{side[1]} are too small for {cfg.arch} (at least "
                                        f"{MIN_SIDE[cfg.arch]} pixels a side); set image_size")


def check_init_from(cfg: Config, ref: str, task: str, meta: dict[str, Any], stats: dict[str, Any]) -> None:
    """Every tensor but the head's is loaded: arch, width, depth, channels (and LeNet's image size) must match."""
    theirs, pre = meta.get("config") or {}, meta.get("preprocessing") or {}
    same_backbone(ref, {"arch": theirs.get("arch"), "width": theirs.get("width"), "depth": theirs.get("depth"),
                        "channels": pre.get("channels"), "image size": pre.get("size")},
                  {"arch": cfg.arch, "width": cfg.width, "depth": cfg.depth if cfg.arch == "resnet" else None,
                   "channels": cfg.channels or stats.get("channels"),
                   "image size": _side(cfg, stats) if cfg.arch == "lenet" else None})
