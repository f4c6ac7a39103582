"""Hyperparameters of a fraud-scoring run (stdlib only: the API validates job configs with it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from models.common.checks import ConfigError

ARCHS = ("autoencoder", "deep_autoencoder", "denoising_autoencoder", "contractive_autoencoder", "mlp", "hybrid")


@dataclass
class Config:
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-5
    # autoencoder: 29-40-29 (the seed book's vanilla one); deep_autoencoder: 29-80-40-80-29;
    # denoising_autoencoder / contractive_autoencoder: the vanilla shape with input noise / a Jacobian
    # penalty. All four train on legitimate rows only and score by reconstruction error.
    # mlp: a supervised scorer on the labels; hybrid: the MLP fed the features and the per-feature
    # reconstruction errors of an autoencoder trained on the legitimate rows.
    arch: Literal["autoencoder", "deep_autoencoder", "denoising_autoencoder", "contractive_autoencoder",
                  "mlp", "hybrid"] = "mlp"
    hidden: int = 64  # width of the MLP's hidden layers (two of them)
    dropout: float = 0.2
    loss: Literal["weighted_bce", "focal"] = "weighted_bce"  # mlp / hybrid
    pos_weight: float | None = None  # weighted_bce: weight of a fraud row; None: legit/fraud count ratio
    focal_gamma: float = 2.0
    noise_std: float = 0.1  # denoising_autoencoder: Gaussian noise on the (standardised) input
    contractive_weight: float = 1e-4  # contractive_autoencoder: weight of ||dh/dx||^2
    label_column: str | None = None  # None: the first of Class, class, label, is_fraud, fraud
    drop_columns: list[str] = field(default_factory=lambda: ["Time"])  # dropped where present (ids, times)
    log_columns: list[str] = field(default_factory=lambda: ["Amount"])  # log1p before scaling, where present
    # the decision threshold, chosen on the validation split: the highest-recall threshold whose
    # precision is at least target_precision, or the highest threshold whose recall is at least
    # target_recall; neither: the best F1. Precision is at the natural prevalence when it is given.
    target_precision: float | None = None
    target_recall: float | None = None
    # the fraud rate in the population the sample was drawn from (e.g. 0.001727 for the full ULB data);
    # legitimate validation rows are weighted up to it in PR-AUC, precision and F1
    prevalence: float | None = None
    negative_weight: float | None = None  # or the weight of a legitimate row directly (e.g. 57.79)
    val_fraction: float = 0.2  # stratified: the same share of frauds and of legitimate rows
    seed: int = 0

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
        for name, ok, message in checks:
            if not ok:
                raise ValueError(f"{name} {message} (got {getattr(self, name)!r})")
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
