"""Hyperparameters of a recommendation run (stdlib only: the API validates job configs with it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from models.common.checks import ConfigError, enforce

MAX_CELLS = 200_000_000  # users x items of the dense matrices the graph holds

DEFAULT_EPOCHS = {"bpmf": 600, "mf": 10, "rbm": 20}
DEFAULT_FACTORS = {"bpmf": 10, "mf": 32, "rbm": 32}


@dataclass
class Config:
    arch: Literal["bpmf", "mf", "rbm"] = field(default="bpmf", metadata={"doc": (
        "`bpmf`: Bayesian matrix factorisation with user and item biases, fitted by Gibbs sampling, predicting the "
        "average of `samples` posterior draws; `mf`: the same model's point estimate by alternating least "
        "squares; `rbm`: the seed book's restricted Boltzmann machine (ratings scaled to [0, 1], unrated entries "
        "kept at zero, contrastive divergence CD-k).")})
    epochs: int | None = field(default=None, metadata={"doc": (
        "Sweeps (bpmf, mf) or epochs (rbm) of training; none: bpmf 600, mf 10, rbm 20.")})
    batch_size: int = field(default=64, metadata={"doc": "rbm only: users per CD step."})
    factors: int | None = field(default=None, metadata={"doc": (
        "bpmf, mf: latent factors per user and item; none: bpmf 10, mf 32.")})
    burn_in: int | None = field(default=None, metadata={"doc": (
        "bpmf only: sweeps discarded before samples are kept; none: min(100, `epochs` // 6).")})
    samples: int | None = field(default=None, metadata={"doc": (
        "bpmf only: posterior draws kept, evenly spaced after `burn_in`; none: min(50, `epochs` - `burn_in`).")})
    reg: float = field(default=0.15, metadata={"doc": (
        "mf only: L2 penalty on the factors, times each user's or item's rating count.")})
    bias_reg: float = field(default=5.0, metadata={"doc": (
        "mf only: L2 penalty on the biases, not scaled, so that rarely rated items and users shrink to the "
        "mean.")})
    hidden: int = field(default=256, metadata={"doc": "rbm only: hidden units."})
    cd_k: int = field(default=1, metadata={"doc": "rbm only: Gibbs steps per contrastive-divergence update."})
    lr: float = field(default=0.1, metadata={"doc": "rbm only: learning rate of the CD updates."})
    max_k: int = field(default=100, metadata={"doc": (
        "The most items one request may ask for (the K of the served graph's TopK).")})
    val_fraction: float = field(default=0.02, metadata={"doc": (
        "Share of the ratings held out at random for validation, besides each user's leave-one-out item.")})
    seed: int = field(default=0, metadata={"doc": "Random seed of the run."})

    def __post_init__(self) -> None:
        if self.epochs is None:
            self.epochs = DEFAULT_EPOCHS[self.arch]
        if self.factors is None:
            self.factors = DEFAULT_FACTORS[self.arch]
        if self.burn_in is None:
            self.burn_in = min(100, self.epochs // 6)
        if self.samples is None:
            self.samples = max(1, min(50, self.epochs - self.burn_in))
        checks = [
            ("epochs", 1 <= self.epochs <= 10_000, "must be between 1 and 10000"),
            ("batch_size", 1 <= self.batch_size <= 65_536, "must be between 1 and 65536"),
            ("factors", 1 <= self.factors <= 512, "must be between 1 and 512"),
            ("burn_in", 0 <= self.burn_in < self.epochs, f"must be >= 0 and less than epochs ({self.epochs})"),
            ("samples", 1 <= self.samples <= min(self.epochs - self.burn_in, 1000),
             f"must be between 1 and epochs - burn_in ({self.epochs - self.burn_in}), at most 1000"),
            ("reg", self.reg > 0, "must be > 0"),
            ("bias_reg", self.bias_reg > 0, "must be > 0"),
            ("hidden", 1 <= self.hidden <= 8192, "must be between 1 and 8192"),
            ("cd_k", 1 <= self.cd_k <= 50, "must be between 1 and 50"),
            ("lr", 0 < self.lr <= 10, "must be > 0 and <= 10"),
            ("max_k", 1 <= self.max_k <= 10_000, "must be between 1 and 10000"),
            ("val_fraction", 0 <= self.val_fraction < 1, "must be >= 0 and < 1"),
        ]
        enforce(self, checks)


def check_against_dataset(cfg: Config, stats: dict[str, Any]) -> None:
    """What models/recommendation/training.py's prepare would refuse once the job ran."""
    users, items = stats.get("users"), stats.get("items")
    if isinstance(users, int) and isinstance(items, int) and users * items > MAX_CELLS:
        raise ConfigError(None, f"{users} users x {items} items is over {MAX_CELLS} cells, more than this "
                                "family's dense matrices hold")
