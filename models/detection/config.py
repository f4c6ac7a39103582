"""Hyperparameters of an object-detection run (stdlib only: the API validates job configs with it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from models.common.checks import at_least_two


@dataclass
class Config:
    epochs: int = 20  # a general default; the MNIST detection benchmark sets its own (BENCHMARKS.md)
    batch_size: int = 32
    lr: float = 2e-3
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    momentum: float = 0.9  # sgd only
    weight_decay: float = 1e-4
    scheduler: Literal["cosine", "none"] = "cosine"  # cosine after a short linear warm-up, per step
    warmup_steps: int = 100
    image_size: int = 128  # images are letterboxed to image_size x image_size (a multiple of 16)
    width: int = 32  # channels of the first stage; later stages have 2x and 4x, the FPN and head 1x
    val_fraction: float = 0.1  # when the dataset names no validation split of its own
    seed: int = 0
    translate: float = 0.0  # random shift of each training image, as a fraction of image_size (0: none)

    def __post_init__(self) -> None:
        checks = [
            ("epochs", 1 <= self.epochs <= 10_000, "must be between 1 and 10000"),
            ("batch_size", 1 <= self.batch_size <= 4096, "must be between 1 and 4096"),
            ("lr", 0 < self.lr <= 10, "must be > 0 and <= 10"),
            ("momentum", 0 <= self.momentum < 1, "must be >= 0 and < 1"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("warmup_steps", self.warmup_steps >= 0, "must be >= 0"),
            ("image_size", 32 <= self.image_size <= 1024 and self.image_size % 16 == 0,
             "must be a multiple of 16 between 32 and 1024"),
            ("width", 4 <= self.width <= 512, "must be between 4 and 512"),
            ("val_fraction", 0 < self.val_fraction < 1, "must be > 0 and < 1"),
            ("translate", 0 <= self.translate <= 0.5, "must be between 0 and 0.5"),
        ]
        for name, ok, message in checks:
            if not ok:
                raise ValueError(f"{name} {message} (got {getattr(self, name)!r})")


def check_against_dataset(cfg: Config, stats: dict[str, Any]) -> None:
    """What models/detection/training.py's load_dataset would refuse once the job ran."""
    at_least_two(stats, "train_images", "training image(s)", bool(stats.get("val_images")))
