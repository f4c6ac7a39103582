"""Hyperparameters of a regression run (stdlib only: the API validates job configs with it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.common.checks import ConfigError


@dataclass
class Config:
    epochs: int = field(default=20, metadata={"doc": "Passes over the training rows."})
    batch_size: int = field(default=32, metadata={"doc": "Rows per optimiser step."})
    lr: float = field(default=0.05, metadata={"doc": "Learning rate of plain SGD."})
    val_fraction: float = field(default=0.2, metadata={"doc": "Share of rows held out for validation."})
    seed: int = field(default=0, metadata={"doc": "Random seed of the split and the shuffles."})

    def __post_init__(self) -> None:
        checks = [("epochs", 1 <= self.epochs <= 1000, "must be between 1 and 1000"),
                  ("batch_size", 1 <= self.batch_size <= 4096, "must be between 1 and 4096"),
                  ("lr", 0 < self.lr <= 10, "must be > 0 and <= 10"),
                  ("val_fraction", 0 < self.val_fraction < 1, "must be > 0 and < 1")]
        for name, ok, message in checks:
            if not ok:
                raise ValueError(f"{name} {message} (got {getattr(self, name)!r})")


def check_against_dataset(cfg: Config, stats: dict[str, Any]) -> None:
    """At submit: the split must leave a row on each side."""
    rows = stats.get("rows")
    if isinstance(rows, int) and int(rows * cfg.val_fraction) < 1:
        raise ConfigError("val_fraction", f"holds out no row of the dataset's {rows}")
