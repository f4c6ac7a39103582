"""Hyperparameters of a fraud-scoring run (stdlib only: the API validates job configs with it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from models.common.checks import ConfigError, enforce

ARCHS = ("autoencoder", "deep_autoencoder", "denoising_autoencoder", "contractive_autoencoder", "mlp", "hybrid")


@dataclass
class Config:
    epochs: int = field(default=40, metadata={"doc": "Passes over the training rows."})
    batch_size: int = field(default=128, metadata={"doc": "Rows per optimiser step."})
    lr: float = field(default=1e-3, metadata={"doc": "Learning rate."})
    weight_decay: float = field(default=1e-5, metadata={"doc": "Weight decay."})
    arch: Literal["autoencoder", "deep_autoencoder", "denoising_autoencoder", "contractive_autoencoder",
                  "mlp", "hybrid"] = field(default="mlp", metadata={"doc": (
        "`autoencoder` (the seed book's 29-40-29), `deep_autoencoder` (29-80-40-80-29), `denoising_autoencoder` "
        "(input noise) and `contractive_autoencoder` (Jacobian penalty) train on legitimate rows only and score by "
        "reconstruction error; `mlp` is a supervised scorer on the labels; `hybrid` is the MLP fed the features "
        "and the per-feature reconstruction errors of an autoencoder trained on the legitimate rows.")})
    hidden: int = field(default=64, metadata={"doc": "Width of the MLP's two hidden layers (mlp, hybrid)."})
    dropout: float = field(default=0.2, metadata={"doc": "Dropout in the MLP (mlp, hybrid)."})
    loss: Literal["weighted_bce", "focal"] = field(default="weighted_bce", metadata={"doc": (
        "mlp, hybrid: class-weighted binary cross-entropy or focal loss.")})
    pos_weight: float | None = field(default=None, metadata={"doc": (
        "`weighted_bce`: the weight of a fraud row; none: the ratio of legitimate to fraud rows.")})
    focal_gamma: float = field(default=2.0, metadata={"doc": "`focal`: the focusing exponent gamma."})
    noise_std: float = field(default=0.1, metadata={"doc": (
        "denoising_autoencoder: std of the Gaussian noise added to the (standardised) input.")})
    contractive_weight: float = field(default=1e-4, metadata={"doc": (
        "contractive_autoencoder: weight of the penalty ||dh/dx||^2.")})
    label_column: str | None = field(default=None, metadata={"doc": (
        "The 0/1 label column; none: the first of Class, class, label, Label, is_fraud, fraud.")})
    drop_columns: list[str] = field(default_factory=lambda: ["Time"], metadata={"doc": (
        "Columns left out of the features where present (ids, times).")})
    log_columns: list[str] = field(default_factory=lambda: ["Amount"], metadata={"doc": (
        "Columns taken through log1p before scaling, where present.")})
    # The decision threshold is chosen on the validation split; precision is at the natural prevalence when
    # prevalence or negative_weight is given.
    target_precision: float | None = field(default=None, metadata={"doc": (
        "Threshold: the highest-recall one whose precision is at least this; none (and no `target_recall`): the "
        "best F1.")})
    target_recall: float | None = field(default=None, metadata={"doc": (
        "Threshold: the highest one whose recall is at least this (not with `target_precision`).")})
    prevalence: float | None = field(default=None, metadata={"doc": (
        "The fraud rate of the population the sample was drawn from (e.g. 0.001727 for the full ULB data): "
        "legitimate validation rows are weighted up to it in PR-AUC, precision and F1.")})
    negative_weight: float | None = field(default=None, metadata={"doc": (
        "Instead of `prevalence`, the weight of a legitimate validation row directly (e.g. 57.79).")})
    val_fraction: float = field(default=0.2, metadata={"doc": (
        "Share held out for validation, stratified: the same share of frauds and of legitimate rows.")})
    seed: int = field(default=0, metadata={"doc": "Random seed of the run."})

    def __post_init__(self) -> None:
        def unit(x):
            return x is None or 0 < x < 1
        checks = [
            ("epochs", 1 <= self.epochs <= 10_000, "must be between 1 and 10000"),
            ("batch_size", 1 <= self.batch_size <= 65_536, "must be between 1 and 65536"),
            ("lr", 0 < self.lr <= 10, "must be > 0 and <= 10"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("hidden", 1 <= self.hidden <= 4096, "must be between 1 and 4096"),
            ("dropout", 0 <= self.dropout < 1, "must be >= 0 and < 1"),
            ("pos_weight", self.pos_weight is None or self.pos_weight > 0, "must be > 0"),
            ("focal_gamma", self.focal_gamma >= 0, "must be >= 0"),
            ("noise_std", self.noise_std >= 0, "must be >= 0"),
            ("contractive_weight", self.contractive_weight >= 0, "must be >= 0"),
            ("target_precision", unit(self.target_precision), "must be > 0 and < 1"),
            ("target_recall", unit(self.target_recall), "must be > 0 and < 1"),
            ("prevalence", unit(self.prevalence), "must be > 0 and < 1"),
            ("negative_weight", self.negative_weight is None or self.negative_weight > 0, "must be > 0"),
            ("val_fraction", 0 < self.val_fraction < 1, "must be > 0 and < 1"),
        ]
        enforce(self, checks)
        if self.target_precision is not None and self.target_recall is not None:
            raise ValueError("target_precision and target_recall: give at most one (got both)")
        if self.prevalence is not None and self.negative_weight is not None:
            raise ValueError("prevalence and negative_weight: give at most one (got both)")


def check_against_dataset(cfg: Config, stats: dict[str, Any]) -> None:
    """What models/fraud/data.py's read and training.prepare would refuse once the job ran."""
    columns, label = stats.get("columns"), stats.get("label_column")
    if not isinstance(columns, list) or not isinstance(label, str):
        return  # a dataset uploaded before these were recorded
    header = [*columns, label]
    if cfg.label_column is not None and cfg.label_column not in header:
        raise ConfigError("label_column", f"no column {cfg.label_column!r} in the dataset "
                                          f"(columns: {', '.join(header)})")
    wanted = cfg.label_column or label  # the upload found the default one
    features = [c for c in header if c != wanted and c not in cfg.drop_columns]
    if not features:
        raise ConfigError("drop_columns", "leaves no feature columns")
    if wanted == label:  # the counts were taken with this label column
        for name, n in (("frauds (1)", stats.get("frauds")), ("legitimate rows (0)", stats.get("legitimate"))):
            if isinstance(n, int) and n < 2:
                raise ConfigError(None, f"the dataset has {n} {name}; at least 2 are needed to hold one out for "
                                        "validation")
