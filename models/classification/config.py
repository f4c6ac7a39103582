"""Hyperparameters of an image-classification run (stdlib only: the API validates job configs with it).

The defaults train the LeNet-style baseline well on MNIST-like data (see BENCHMARKS.md); for colour
photos (CIFAR-10) use arch=resnet with sgd + onecycle (the benchmark's config)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# init_from: a registered version "name:3" or "name@production", or a weights file in the dataset archive
REGISTRY_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?::(?P<version>[0-9]+)|@(?P<alias>[A-Za-z0-9._-]+))$")
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


@dataclass
class Config:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3  # the peak lr for onecycle
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    scheduler: Literal["cosine", "onecycle", "none"] = "cosine"  # per step; cosine decays lr to 0 over the run
    label_smoothing: float = 0.0
    image_size: int | None = None  # square side; None: the dataset's most common height
    channels: Literal[1, 3] | None = None  # None: 1 when every image is grey, else 3
    val_fraction: float = 0.1  # ignored for npz files in the Keras layout: x_test/y_test validate
    seed: int = 0
    arch: Literal["lenet", "resnet"] = "lenet"
    width: int = 32  # lenet: first conv (the second has 2x); resnet: first stage (then 2x, 4x)
    depth: int = 20  # resnet only: 6n+2 layers, n basic blocks (with batch norm) in each of 3 stages
    crop_padding: int | None = None  # random crop after zero padding; None: side // 8 (colour), // 14 (grey); 0: off
    flip: bool | None = None  # random horizontal flip; None: on for colour images, off for grey (digits)
    amp: bool = True  # bfloat16 autocast on a GPU; no effect on the CPU
    patience: int | None = None  # early stopping: stop after this many epochs without a better val_accuracy
    init_from: str | None = None  # "name:version" / "name@alias" of a classification version, or a weights file
    freeze_backbone: bool = False  # with init_from: train the new head only

    def __post_init__(self) -> None:
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
