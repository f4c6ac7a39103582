"""Hyperparameters of an object-detection run (stdlib only: the API validates job configs with it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from models.common.checks import at_least_two, enforce


@dataclass
class Config:
    epochs: int = field(default=20, metadata={"doc": (
        "Passes over the training split (a general default; the MNIST detection benchmark sets its own).")})
    batch_size: int = field(default=32, metadata={"doc": "Images per optimiser step."})
    lr: float = field(default=2e-3, metadata={"doc": "Peak learning rate, reached at the end of the warm-up."})
    optimizer: Literal["adamw", "adam", "sgd"] = field(default="adamw", metadata={"doc": "The optimiser."})
    momentum: float = field(default=0.9, metadata={"doc": "Momentum of `sgd` (ignored otherwise)."})
    weight_decay: float = field(default=1e-4, metadata={"doc": "Weight decay."})
    scheduler: Literal["cosine", "none"] = field(default="cosine", metadata={"doc": (
        "Learning-rate schedule after the linear warm-up, stepped per batch: `cosine` decays to 0, `none` keeps "
        "`lr`.")})
    warmup_steps: int = field(default=100, metadata={"doc": (
        "Steps of linear warm-up to `lr` (at most a quarter of the run).")})
    image_size: int = field(default=128, metadata={"doc": (
        "Images are letterboxed (aspect kept, grey padding) to this square side, a multiple of 16.")})
    width: int = field(default=32, metadata={"doc": (
        "Channels of the backbone's first stage; later stages have 2x and 4x, the FPN and head 1x.")})
    val_fraction: float = field(default=0.1, metadata={"doc": (
        "Share of the images held out for validation when the dataset names no validation split of its own.")})
    seed: int = field(default=0, metadata={"doc": "Random seed of the run."})
    translate: float = field(default=0.0, metadata={"doc": (
        "Random shift of each training image, as a fraction of `image_size` (0: none).")})

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
        enforce(self, checks)


def check_against_dataset(cfg: Config, stats: dict[str, Any]) -> None:
    """What models/detection/training.py's load_dataset would refuse once the job ran."""
    at_least_two(stats, "train_images", "training image(s)", bool(stats.get("val_images")))
