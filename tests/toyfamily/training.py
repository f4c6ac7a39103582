"""Regression training (torch; workers only): a linear model on standardised features, plain SGD.

The worker (workers/runner.py) calls load_dataset, total_steps, train, evaluate, export_onnx,
example_inputs and version_metadata; everything else here is the family's own business. train hands the
run to the platform's loop (models/common/loop.py) as a Recipe: the network, the optimiser, a step's
loss and an epoch's metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.common import calibration, loop
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


class _Run(loop.Recipe):
    """Plain SGD on the squared error of shuffled batches. models/common/loop.py runs it: the epochs and
    steps, backward and the optimiser's step, progress, checkpoints and resume."""

    def __init__(self, cfg: Config, data: Prepared, device: torch.device, init: None, resume: dict[str, Any] | None):
        self.model = Linear(data).to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr)
        self.epochs, self.batch_size, self.examples = cfg.epochs, cfg.batch_size, len(data.y_train)
        self.steps_per_epoch = -(-self.examples // cfg.batch_size)
        self.x = torch.from_numpy(data.x_train).to(device)
        self.y = torch.from_numpy(data.y_train).to(device)[:, None]

    def start_epoch(self, epoch: int) -> None:
        self.model.train()
        self.total = 0.0

    def train_step(self, idx: torch.Tensor, epoch: int, i: int) -> loop.Step:
        loss = nn.functional.mse_loss(self.model(self.x[idx]), self.y[idx])  # idx: this step's shuffled rows
        self.total += loss.item()
        return loop.Step(loss, {"loss": self.total / (i + 1)})  # reported with the step

    def end_epoch(self, done: int, metrics: dict[str, float]) -> tuple[dict[str, float], None]:
        return {"train_loss": self.total / self.steps_per_epoch}, None  # the run's metrics so far


train = loop.trainer(_Run)


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


def calibration_batches(data: Prepared, count: int, batch_size: int):
    """Training rows as the ONNX model takes them, for int8 calibration (models.contract.Family.calibration)."""
    for idx in calibration.rows(len(data.y_train), count, batch_size):
        yield {"features": data.x_train[idx]}


def version_metadata(cfg: Config, data: Prepared) -> dict[str, Any]:
    return {"features": list(data.features)}
