"""Regression training (torch; workers only): a linear model on standardised features, plain SGD.

The worker (workers/runner.py) calls load_dataset, total_steps, train, evaluate, export_onnx,
example_inputs and version_metadata; everything else here is the family's own business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.common.onnx_export import export_batch_dynamic

from . import data as datasets
from .config import Config


@dataclass
class Prepared:
    features: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def load_dataset(path: Path, fmt: str, cfg: Config) -> Prepared:
    features, x, y = datasets.read(path)
    order = np.random.default_rng(cfg.seed).permutation(len(y))  # seeded: a resumed run sees the same split
    n_val = max(1, int(len(y) * cfg.val_fraction))
    val, train = order[:n_val], order[n_val:]
    return Prepared(features, x[train], y[train], x[val], y[val])


class Linear(nn.Module):
    """Standardises inside the graph, so the served model takes raw features."""

    def __init__(self, data: Prepared):
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(data.x_train.mean(0)))
        self.register_buffer("std", torch.from_numpy(data.x_train.std(0) + 1e-6))
        self.linear = nn.Linear(len(data.features), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, F] -> [N, 1]
        return self.linear((x - self.mean) / self.std)


def total_steps(cfg: Config, data: Prepared) -> int:
    return cfg.epochs * -(-len(data.y_train) // cfg.batch_size)


def train(cfg: Config, data: Prepared, device: torch.device | str, report: Callable[[int, dict[str, float]], None],
          checkpoint: Callable[[dict[str, Any]], None] | None = None,
          resume: dict[str, Any] | None = None) -> tuple[nn.Module, dict[str, float]]:
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    model = Linear(data).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    epoch, step, loss_avg = 0, 0, float("nan")
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        shuffle.set_state(resume["shuffle"])
        epoch, step, loss_avg = resume["epoch"], resume["step"], resume["loss"]
    x = torch.from_numpy(data.x_train).to(device)
    y = torch.from_numpy(data.y_train).to(device)[:, None]
    per_epoch = -(-len(y) // cfg.batch_size)
    while epoch < cfg.epochs:
        order = torch.randperm(len(y), generator=shuffle).to(device)
        total = 0.0
        for i in range(per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            loss = nn.functional.mse_loss(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            total += loss.item()
            report(step, {"epoch": epoch + (i + 1) / per_epoch, "loss": total / (i + 1)})
        epoch, loss_avg = epoch + 1, total / per_epoch
        if checkpoint is not None:
            checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(), "shuffle": shuffle.get_state(),
                        "epoch": epoch, "step": step, "loss": loss_avg})
    return model, {"train_loss": loss_avg}


@torch.no_grad()
def evaluate(model: nn.Module, data: Prepared, device: torch.device | str) -> dict[str, Any]:
    model.eval()
    pred = model(torch.from_numpy(data.x_val).to(device)).cpu().numpy().reshape(-1)
    err = pred - data.y_val
    return {"mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err)))}


def example_inputs(data: Prepared, n: int = 32) -> dict[str, np.ndarray]:
    return {"features": np.concatenate([data.x_val, data.x_train])[:n]}


def export_onnx(model: nn.Module, path: Path, data: Prepared) -> None:
    model = model.to("cpu").eval()
    export_batch_dynamic(model, (torch.from_numpy(data.x_val[:2]),), path, ["features"], ["value"], 17)


def version_metadata(cfg: Config, data: Prepared) -> dict[str, Any]:
    return {"features": list(data.features)}
