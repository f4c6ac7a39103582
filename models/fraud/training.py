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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.common.onnx_export import export_batch_dynamic
from models.fraud import data as datasets
from models.fraud import metrics as M
from models.fraud.config import Config

Report = Callable[[int, dict[str, float]], None]
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


class Scale(nn.Module):
    def __init__(self, data: Prepared):
        super().__init__()
        n = len(data.features)
        mask = torch.zeros(n)
        mask[[data.features.index(c) for c in data.log_columns]] = 1.0
        self.register_buffer("log_mask", mask)
        self.register_buffer("mean", torch.tensor(data.mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(data.std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # raw [N, F] -> standardised [N, F]
        logged = torch.sign(x) * torch.log1p(torch.abs(x))
        x = self.log_mask * logged + (1 - self.log_mask) * x
        return (x - self.mean) / self.std


class AutoEncoder(nn.Module):
    """F - hidden... - F with tanh inside and a linear output; the seed book's 29-40-29 and 29-80-40-80-29."""

    def __init__(self, n: int, hidden: list[int]):
        super().__init__()
        dims = [n, *hidden]
        mid = len(hidden) // 2 + 1  # layers in the encoder
        pairs = zip(dims[:mid], dims[1:mid + 1], strict=True)
        self.encoder = nn.Sequential(*[m for a, b in pairs for m in (nn.Linear(a, b), nn.Tanh())])
        rest = [*dims[mid:], n]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(rest[:-1], rest[1:], strict=False)):
            layers.append(nn.Linear(a, b))
            if i < len(rest) - 2:
                layers.append(nn.Tanh())
        self.decoder = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(z))

    def errors(self, z: torch.Tensor) -> torch.Tensor:  # per-feature squared error [N, F]
        return (self(z) - z) ** 2


class AEScorer(nn.Module):
    def __init__(self, data: Prepared, hidden: list[int]):
        super().__init__()
        self.scale = Scale(data)
        self.ae = AutoEncoder(len(data.features), hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, F] -> [N, 1 + F]
        err = self.ae.errors(self.scale(x)) / x.shape[1]
        return torch.cat([err.sum(1, keepdim=True), err], 1)


class Classifier(nn.Module):
    """mlp: z -> logit. hybrid: [z, per-feature reconstruction error of an autoencoder] -> logit."""

    def __init__(self, data: Prepared, hidden: int, dropout: float, hybrid: bool):
        super().__init__()
        n = len(data.features)
        self.scale = Scale(data)
        self.ae = AutoEncoder(n, [40]) if hybrid else None
        self.net = nn.Sequential(nn.Linear(2 * n if hybrid else n, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def logits(self, z: torch.Tensor) -> torch.Tensor:  # [M, F] standardised -> [M]
        if self.ae is not None:
            z = torch.cat([z, torch.log1p(self.ae.errors(z))], 1)
        return self.net(z).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, F] -> [N, 1 + F]
        z = self.scale(x)
        n = z.shape[1]
        score = torch.sigmoid(self.logits(z))  # [N]
        keep = 1.0 - torch.eye(n, dtype=z.dtype, device=z.device)  # row j: feature j set to its mean (0)
        occluded = (z.unsqueeze(1) * keep).reshape(-1, n)  # [N * F, F]
        without = torch.sigmoid(self.logits(occluded)).reshape(-1, n)  # [N, F]
        return torch.cat([score.unsqueeze(1), score.unsqueeze(1) - without], 1)


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


def train(
    cfg: Config, data: Prepared, device: torch.device | str, report: Report,
    checkpoint: Callable[[dict[str, Any]], None] | None = None, resume: dict[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, float]]:
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    model = build(cfg, data).to(device)
    phases = _phases(cfg)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    phase_i, epoch, step, metrics = 0, 0, 0, {}
    opt_state = None
    if resume is not None:
        model.load_state_dict(resume["model"])
        phase_i, epoch, step = resume["phase"], resume["epoch"], resume["step"]
        opt_state = resume["optimizer"]
        shuffle.set_state(resume["rng"]["shuffle"])
        torch.set_rng_state(resume["rng"]["torch"])
        metrics = dict(resume.get("metrics", {}))
    x_all = torch.from_numpy(data.x_train).to(device)
    y_all = torch.from_numpy(data.y_train).float().to(device)
    n_pos = max(int(data.y_train.sum()), 1)
    pos_weight = cfg.pos_weight or (len(data.y_train) - n_pos) / n_pos
    while phase_i < len(phases):
        phase = phases[phase_i]
        if phase == "ae":
            params = model.ae.parameters()
            x, y = x_all[y_all < 0.5], None
        else:
            params = model.net.parameters() if cfg.arch == "hybrid" else model.parameters()
            x, y = x_all, y_all
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if opt_state is not None:
            opt.load_state_dict(opt_state)
            opt_state = None
        spe = _steps(cfg, data, phase)
        while epoch < cfg.epochs:
            model.train()
            if model.ae is not None and phase == "clf":
                model.ae.eval()
            order = torch.randperm(len(x), generator=shuffle).to(device)
            total = 0.0
            for i in range(spe):
                idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                z = model.scale(x[idx])
                if phase == "ae":
                    loss = _ae_loss(cfg, model.ae, z)
                else:
                    loss = _clf_loss(cfg, model.logits(z), y[idx], pos_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                total += loss.item()
                report(step, {"epoch": epoch + (i + 1) / spe, "loss": total / (i + 1), "phase": float(phase_i)})
            epoch += 1
            metrics[f"train_loss_{phase}" if len(phases) > 1 else "train_loss"] = total / spe
            if phase_i == len(phases) - 1:
                val = _scores(model, data.x_val, device)
                metrics["val_roc_auc"] = M.roc_auc(data.y_val, val)
                metrics["val_pr_auc"] = M.pr_auc(data.y_val, val, data.negative_weight)
                report(step, {"epoch": float(epoch), "val_roc_auc": metrics["val_roc_auc"],
                              "val_pr_auc": metrics["val_pr_auc"]})
            if checkpoint is not None:
                done = epoch >= cfg.epochs
                checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict() if not done else None,
                            "phase": phase_i + 1 if done else phase_i, "epoch": 0 if done else epoch, "step": step,
                            "rng": {"shuffle": shuffle.get_state(), "torch": torch.get_rng_state()},
                            "metrics": metrics, "config": asdict(cfg)})
        phase_i, epoch = phase_i + 1, 0
    return model, {k: v for k, v in metrics.items() if k.startswith("train_")}


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
    data.threshold, data.threshold_rule = M.choose_threshold(data.y_val, s, data.negative_weight,
                                                             data.target_precision, data.target_recall)
    return M.report(data.y_val, s, data.threshold, data.negative_weight)


def example_inputs(data: Prepared, n: int = 32) -> dict[str, np.ndarray]:
    frauds = data.x_val[data.y_val == 1][: n // 2]
    return {"features": np.concatenate([frauds, data.x_val[data.y_val == 0][: n - len(frauds)]]).astype(np.float32)}


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
