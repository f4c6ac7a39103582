"""Fraud scoring with PyTorch (workers and tests only; the API never imports this).

    load_dataset(path, fmt, cfg) -> Prepared     features, stratified train/val split, scaling statistics
    build(cfg, data) -> nn.Module                features [N, F] (raw) -> scores [N, 1 + F]
    train(cfg, data, device, report, checkpoint=None, resume=None) -> (module, metrics)
    evaluate(module, data, device)               ROC-AUC, PR-AUC (natural prevalence), precision/recall at
                                                 the threshold, confusion matrix; chooses the threshold
    export_onnx(module, path, data)              "features" [N, F] float32 -> "scores" [N, 1 + F], opset 17
    example_inputs(data, n) / version_metadata(cfg, data)

Every network scales its input itself (log1p of `log_columns`, then (x - mean) / std, constants in the
graph), so serving sends the raw values in schema order. Output column 0 is the score (reconstruction
error for autoencoders, fraud probability for mlp/hybrid), columns 1.. are each feature's contribution
to it: its share of the reconstruction error, or how much the score drops when the feature is set to
its mean (occlusion, computed in the graph).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.common import calibration, loop
from models.common.onnx_export import export_batch_dynamic
from models.fraud import data as datasets
from models.fraud import evaluation
from models.fraud import metrics as M
from models.fraud.config import Config
from models.fraud.networks import AEScorer, AutoEncoder, Classifier

OPSET = 17
AUTOENCODERS = {"autoencoder": [40], "deep_autoencoder": [80, 40, 80], "denoising_autoencoder": [40],
                "contractive_autoencoder": [40]}


@dataclass
class Prepared:
    features: list[str]
    log_columns: list[str]
    mean: list[float]  # of the (log-transformed) training features
    std: list[float]
    x_train: np.ndarray  # [N, F] float32, raw values
    y_train: np.ndarray  # [N] int64
    x_val: np.ndarray
    y_val: np.ndarray
    label: str
    negative_weight: float  # weight of a legitimate validation row (natural prevalence)
    target_precision: float | None = None
    target_recall: float | None = None
    threshold: float | None = None  # chosen by evaluate()
    threshold_rule: str | None = None
    dropped: list[str] = field(default_factory=list)  # columns of the file left out of the features


def load_dataset(path: Path, fmt: str, cfg: Config) -> Prepared:
    if fmt != "csv":
        raise datasets.DatasetError(f"unknown format {fmt!r}; fraud takes csv")
    return prepare(cfg, datasets.read(path, cfg.label_column))


def prepare(cfg: Config, table: datasets.Table) -> Prepared:
    """Drops columns, splits stratified (seeded: a resumed run sees the same split), measures scaling."""
    keep = [i for i, c in enumerate(table.columns) if c not in set(cfg.drop_columns)]
    if not keep:
        raise ValueError("drop_columns leaves no feature columns")
    features = [table.columns[i] for i in keep]
    x, y = table.x[:, keep].astype(np.float32), table.y
    rng = np.random.default_rng(cfg.seed)
    val = []
    for label in (0, 1):
        idx = rng.permutation(np.nonzero(y == label)[0])
        if len(idx) < 2:
            raise ValueError(f"the dataset has {len(idx)} row(s) labelled {label}; at least 2 are needed "
                             "to hold one out for validation")
        val.append(idx[:min(len(idx) - 1, max(1, round(len(idx) * cfg.val_fraction)))])
    is_val = np.zeros(len(y), bool)
    is_val[np.concatenate(val)] = True
    log_columns = [c for c in cfg.log_columns if c in features]
    z = _log(x[~is_val], [features.index(c) for c in log_columns]).astype(np.float64)
    mean, std = z.mean(0), np.maximum(z.std(0), 1e-6)
    w = M.negative_weight(y[is_val], cfg.prevalence, cfg.negative_weight)
    return Prepared(features, log_columns, mean.tolist(), std.tolist(), x[~is_val], y[~is_val], x[is_val], y[is_val],
                    table.label, w, cfg.target_precision, cfg.target_recall,
                    dropped=[c for c in table.columns if c not in features])


def _log(x: np.ndarray, cols: list[int]) -> np.ndarray:
    x = x.copy()
    x[:, cols] = np.sign(x[:, cols]) * np.log1p(np.abs(x[:, cols]))
    return x


def build(cfg: Config, data: Prepared) -> nn.Module:
    if cfg.arch in AUTOENCODERS:
        return AEScorer(data, AUTOENCODERS[cfg.arch])
    return Classifier(data, cfg.hidden, cfg.dropout, hybrid=cfg.arch == "hybrid")


def _phases(cfg: Config) -> list[str]:
    """What train() fits, in order: "ae" (on legitimate rows) and/or "clf" (on every row)."""
    return {"mlp": ["clf"], "hybrid": ["ae", "clf"]}.get(cfg.arch, ["ae"])


def _steps(cfg: Config, data: Prepared, phase: str) -> int:
    n = int((data.y_train == 0).sum()) if phase == "ae" else len(data.y_train)
    return math.ceil(n / cfg.batch_size)


def total_steps(cfg: Config, data: Prepared) -> int:
    return sum(cfg.epochs * _steps(cfg, data, p) for p in _phases(cfg))


def _clf_loss(cfg: Config, logits: torch.Tensor, y: torch.Tensor, pos_weight: float) -> torch.Tensor:
    weight = torch.where(y > 0.5, pos_weight, 1.0)
    if cfg.loss == "focal":
        p = torch.sigmoid(logits)
        pt = torch.where(y > 0.5, p, 1 - p)
        bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return (weight * (1 - pt) ** cfg.focal_gamma * bce).sum() / weight.sum()
    return (weight * F.binary_cross_entropy_with_logits(logits, y, reduction="none")).sum() / weight.sum()


def _ae_loss(cfg: Config, ae: AutoEncoder, z: torch.Tensor) -> torch.Tensor:
    if cfg.arch == "denoising_autoencoder":
        return F.mse_loss(ae(z + cfg.noise_std * torch.randn_like(z)), z)
    if cfg.arch == "contractive_autoencoder":
        lin: nn.Linear = ae.encoder[0]
        h = torch.tanh(lin(z))  # [N, H]
        jac = ((1 - h ** 2) ** 2 * (lin.weight ** 2).sum(1)).sum(1).mean()  # ||dh/dz||_F^2
        return F.mse_loss(ae.decoder(h), z) + cfg.contractive_weight * jac
    return F.mse_loss(ae(z), z)


class _Run(loop.Recipe):
    """One run (models/common/loop.py) in phases of `epochs` epochs each: the autoencoder on legitimate rows,
    then (mlp, hybrid) the classifier on every row, each phase with a fresh optimiser of its own."""

    def __init__(self, cfg: Config, data: Prepared, device: torch.device, init: None, resume: dict[str, Any] | None):
        self.cfg, self.data, self.device = cfg, data, device
        self.model = build(cfg, data).to(device)
        self.phases = _phases(cfg)
        self.epochs = len(self.phases) * cfg.epochs
        self.x_all = torch.from_numpy(data.x_train).to(device)
        self.y_all = torch.from_numpy(data.y_train).float().to(device)
        n_pos = max(int(data.y_train.sum()), 1)
        self.pos_weight = cfg.pos_weight or (len(data.y_train) - n_pos) / n_pos
        self.batch_size, self.phase_i, self.done = cfg.batch_size, -1, 0
        self._enter(resume["epoch"] // cfg.epochs if resume is not None else 0)  # where fit loads the optimiser

    def _enter(self, phase_i: int) -> None:
        if phase_i == self.phase_i or phase_i >= len(self.phases):
            return
        self.phase_i, self.phase = phase_i, self.phases[phase_i]
        if self.phase == "ae":
            params = self.model.ae.parameters()
            self.x, self.y = self.x_all[self.y_all < 0.5], None
        else:
            params = self.model.net.parameters() if self.cfg.arch == "hybrid" else self.model.parameters()
            self.x, self.y = self.x_all, self.y_all
        self.optimizer = torch.optim.Adam(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.steps_per_epoch = _steps(self.cfg, self.data, self.phase)

    def start_epoch(self, epoch: int) -> None:
        self._enter(epoch // self.cfg.epochs)
        self.model.train()
        if self.model.ae is not None and self.phase == "clf":
            self.model.ae.eval()
        self.total = 0.0

    def batches(self, epoch: int) -> list[torch.Tensor]:
        return loop.permuted(self, len(self.x), self.steps_per_epoch)

    def progress(self, epoch: int, i: int) -> float:  # within the phase
        return epoch % self.cfg.epochs + (i + 1) / self.steps_per_epoch

    def train_step(self, idx: torch.Tensor, epoch: int, i: int) -> loop.Step:
        z = self.model.scale(self.x[idx])
        if self.phase == "ae":
            loss = _ae_loss(self.cfg, self.model.ae, z)
        else:
            loss = _clf_loss(self.cfg, self.model.logits(z), self.y[idx], self.pos_weight)
        self.total += loss.item()
        return loop.Step(loss, {"loss": self.total / (i + 1), "phase": float(self.phase_i)})

    def end_epoch(self, done: int, metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float] | None]:
        self.done = done
        key = f"train_loss_{self.phase}" if len(self.phases) > 1 else "train_loss"
        metrics = {**metrics, key: self.total / self.steps_per_epoch}
        if self.phase_i < len(self.phases) - 1:
            return metrics, None
        val = _scores(self.model, self.data.x_val, self.device)
        metrics = {**metrics, "val_roc_auc": M.roc_auc(self.data.y_val, val),
                   "val_pr_auc": M.pr_auc(self.data.y_val, val, self.data.negative_weight)}
        return metrics, {"epoch": float(done - self.phase_i * self.cfg.epochs),
                         "val_roc_auc": metrics["val_roc_auc"], "val_pr_auc": metrics["val_pr_auc"]}

    def state(self) -> dict[str, Any]:
        # epochs counted within the phase (what a resumed run's progress says); at a phase's end its
        # optimiser is done with, the next phase starts a fresh one
        phase, epoch = divmod(self.done, self.cfg.epochs)
        return {"phase": phase, "epoch": epoch, **({"optimizer": None} if epoch == 0 else {})}

    def finish(self, metrics: dict[str, float]) -> tuple[nn.Module, dict[str, float]]:
        return self.model, {k: v for k, v in metrics.items() if k.startswith("train_")}

    @staticmethod
    def read_checkpoint(state: dict[str, Any], cfg: Config) -> dict[str, Any]:
        return {**state, "epoch": state["phase"] * cfg.epochs + state["epoch"]}  # the loop's count


train = loop.trainer(_Run)


@torch.no_grad()
def _scores(model: nn.Module, x: np.ndarray, device: torch.device, batch_size: int = 2048) -> np.ndarray:
    was = model.training
    model.eval()
    out = [model(torch.from_numpy(x[i:i + batch_size]).to(device))[:, 0].cpu().numpy()
           for i in range(0, len(x), batch_size)]
    model.train(was)
    return np.concatenate(out).astype(np.float64)


def evaluate(model: nn.Module, data: Prepared, device: torch.device | str) -> dict[str, Any]:
    """Chooses the threshold on the validation split (kept on `data` for the version) and measures it."""
    s = _scores(model, data.x_val, torch.device(device))
    data.threshold, data.threshold_rule, report = evaluation.measure(data, s)
    return report


def example_inputs(data: Prepared, n: int = 32) -> dict[str, np.ndarray]:
    frauds = data.x_val[data.y_val == 1][: n // 2]
    return {"features": np.concatenate([frauds, data.x_val[data.y_val == 0][: n - len(frauds)]]).astype(np.float32)}


def calibration_batches(data: Prepared, count: int, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Training rows, raw, as the ONNX model takes them (models.contract.Family.calibration)."""
    for idx in calibration.rows(len(data.y_train), count, batch_size):
        yield {"features": data.x_train[idx].astype(np.float32)}


def export_onnx(model: nn.Module, path: Path, data: Prepared) -> None:
    model = model.to("cpu").eval()
    dummy = torch.from_numpy(data.x_val[:2].astype(np.float32))
    export_batch_dynamic(model, (dummy,), path, ["features"], ["scores"], OPSET)


def version_metadata(cfg: Config, data: Prepared) -> dict[str, Any]:
    return {"features": list(data.features), "label_column": data.label,
            # accepted and not read at predict, so that a row of the training file is scored as it is
            "ignored_columns": [*data.dropped, data.label],
            "scaling": {"log1p": list(data.log_columns), "mean": data.mean, "std": data.std},
            "threshold": data.threshold, "threshold_rule": data.threshold_rule,
            "score": "reconstruction_error" if cfg.arch in AUTOENCODERS else "probability",
            "negative_weight": data.negative_weight}
