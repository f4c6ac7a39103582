"""Hyperparameters of an image-classification run (stdlib only: the API validates job configs with it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class Config:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    scheduler: Literal["cosine", "none"] = "cosine"  # cosine: decays lr to 0 over the run, per step
    image_size: int | None = None  # square side; None: the dataset's most common height
    channels: Literal[1, 3] | None = None  # None: 1 when every image is grey, else 3
    val_fraction: float = 0.1  # ignored for npz files in the Keras layout: x_test/y_test validate
    seed: int = 0
    arch: Literal["lenet"] = "lenet"
    width: int = 32  # channels of the first convolution; the second has twice as many

    def __post_init__(self) -> None:
        checks = [
            ("epochs", 1 <= self.epochs <= 10_000, "must be between 1 and 10000"),
            ("batch_size", 1 <= self.batch_size <= 65_536, "must be between 1 and 65536"),
            ("lr", 0 < self.lr <= 10, "must be > 0 and <= 10"),
            ("momentum", 0 <= self.momentum < 1, "must be >= 0 and < 1"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("image_size", self.image_size is None or 8 <= self.image_size <= 512, "must be between 8 and 512"),
            ("val_fraction", 0 < self.val_fraction < 1, "must be > 0 and < 1"),
            ("width", 1 <= self.width <= 1024, "must be between 1 and 1024"),
        ]
        for name, ok, message in checks:
            if not ok:
                raise ValueError(f"{name} {message} (got {getattr(self, name)!r})")
