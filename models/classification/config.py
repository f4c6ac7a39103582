"""Hyperparameters of an image-classification run (stdlib only: the API validates job configs with it).

The defaults train the LeNet-style baseline well on MNIST-like data (see BENCHMARKS.md). For colour photos
(CIFAR-10) arch=airbench brings its whole recipe: every key left out takes the value in AIRBENCH, which is
Keller Jordan's airbench94 (2024) restated for a mean loss at any batch size (BENCHMARKS.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# init_from: a registered version "name:3" or "name@production", or a weights file in the dataset archive
from models.common.checks import INIT_FROM_RULE, ConfigError, at_least_two, enforce, init_from_ok, same_backbone

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
    # Every key that defaults to None and is left out takes its arch's value (LENET_RESNET or AIRBENCH), so that
    # arch=airbench alone brings airbench94's whole recipe.
    arch: Literal["lenet", "resnet", "airbench"] = field(default="lenet", metadata={"doc": (
        "`lenet`: a LeNet-5 style CNN; `resnet`: He et al.'s CIFAR ResNet with batch norm; `airbench`: Keller "
        "Jordan's airbench94 network (frozen whitening conv, three conv-pool-BN-GELU groups) and its training "
        "recipe, for colour photos of 16 px and up.")})
    epochs: int | None = field(default=None, metadata={"doc": "Passes over the training split; none: 10, airbench 12."})
    batch_size: int | None = field(default=None, metadata={"doc": (
        "Images per optimiser step; none: 64, airbench 256.")})
    lr: float | None = field(default=None, metadata={"doc": (
        "Learning rate (the peak for `onecycle` and `triangle`); none: 0.001, airbench 1.5 x `batch_size` / 1024.")})
    optimizer: Literal["adam", "adamw", "sgd"] | None = field(default=None, metadata={"doc": (
        "The optimiser; none: `adam`, airbench `sgd`.")})
    momentum: float | None = field(default=None, metadata={"doc": (
        "Momentum of `sgd` (ignored otherwise); none: 0.9, airbench 0.85.")})
    nesterov: bool | None = field(default=None, metadata={"doc": (
        "Nesterov momentum (needs `sgd` with `momentum` > 0); none: false, airbench true.")})
    weight_decay: float | None = field(default=None, metadata={"doc": (
        "Weight decay; none: 0, airbench 0.0153 / 11.5.")})
    scheduler: Literal["cosine", "onecycle", "triangle", "none"] | None = field(default=None, metadata={"doc": (
        "Learning-rate schedule, stepped per batch: `cosine` decays to 0 over the run, `onecycle` warms up over "
        "15 % then decays, `triangle` rises from 0.2 `lr` to `lr` at 23 % of the run then falls to 0.07 `lr` "
        "(airbench's, meant for `lookahead`); none: `cosine`, airbench `triangle`.")})
    label_smoothing: float | None = field(default=None, metadata={"doc": (
        "Label smoothing of the cross-entropy loss; none: 0, airbench 0.2.")})
    lookahead: bool | None = field(default=None, metadata={"doc": (
        "Lookahead: from the fourth epoch on, every 5120 images the weights are pulled into a running average "
        "whose weight grows as (step / steps)^3, and training continues from the average; none: false, "
        "airbench true.")})
    tta: Literal["none", "flip", "flip_translate"] | None = field(default=None, metadata={"doc": (
        "Test-time views whose logits the exported (served) model averages: `flip` (the image and its mirror) or "
        "`flip_translate` (airbench's six: mirror x {as is, 1 px up-left, 1 px down-right}); the run's final "
        "`val_accuracy` is the served model's, the per-epoch ones are of one view; none: `none`, airbench "
        "`flip_translate`.")})
    image_size: int | None = field(default=None, metadata={"doc": (
        "Square side the images are resized to; none: the dataset's most common height.")})
    channels: Literal[1, 3] | None = field(default=None, metadata={"doc": (
        "1 (grey) or 3 (colour); none: 1 when every image is grey, else 3.")})
    val_fraction: float = field(default=0.1, metadata={"doc": (
        "Share of the images held out for validation (ignored for npz files in the Keras layout, whose "
        "x_test/y_test validate).")})
    seed: int = field(default=0, metadata={"doc": "Random seed of the run."})
    width: int | None = field(default=None, metadata={"doc": (
        "Channels of lenet's first conv (the second has 2x), or of resnet's and airbench's first stage (then 2x "
        "or 4x); none: 32, airbench 64.")})
    depth: int = field(default=20, metadata={"doc": (
        "resnet only: 6n+2 layers, n basic blocks (with batch norm) in each of 3 stages.")})
    crop_padding: int | None = field(default=None, metadata={"doc": (
        "Random crop after padding by this many pixels (zero padding; airbench: reflect), 0: off; none: side // 8 "
        "for colour, side // 14 for grey, airbench 2.")})
    flip: bool | None = field(default=None, metadata={"doc": (
        "Random horizontal flip (airbench draws each image's flip once and inverts it every other epoch); none: "
        "on for colour images, off for grey (digits).")})
    amp: bool = field(default=True, metadata={"doc": "bfloat16 autocast on a GPU; no effect on the CPU."})
    patience: int | None = field(default=None, metadata={"doc": (
        "Early stopping: stop after this many epochs without a better `val_accuracy` and keep the best epoch's "
        "weights; none: off.")})
    init_from: str | None = field(default=None, metadata={"doc": (
        "Transfer learning: a registered classification version (`name:3`, `name@alias`) or a weights file in the "
        "dataset archive (.safetensors, .pt, .pth), of the same `arch`, `width` and `depth`; the head is loaded "
        "too when the number of classes matches.")})
    freeze_backbone: bool = field(default=False, metadata={"doc": (
        "With `init_from`: train the new head only (backbone batch-norm statistics frozen too).")})

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
            ("init_from", init_from_ok(self.init_from), INIT_FROM_RULE),
            ("freeze_backbone", not self.freeze_backbone or self.init_from is not None, "needs init_from"),
        ]
        enforce(self, checks)


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
