"""Recommendation with PyTorch (workers and tests only; the API never imports this).

    load_dataset(path, fmt, cfg) -> Prepared     ids, a dense train matrix, held-out ratings, leave-one-out items
    build(cfg, data) -> nn.Module                (user [N], ratings [N, I]) -> predicted ratings [N, I]
    train(cfg, data, device, report, checkpoint=None, resume=None) -> (module, metrics)
    evaluate(module, data, device)               RMSE, MAE on held-out ratings; HR@10, NDCG@10 (leave-one-out)
    export_onnx(module, path, data)              + top_scores/top_items [N, K]: TopK over unrated items
    example_inputs(data, n) / version_metadata(cfg, data)   (with each user's and item's bias, from train)

Three archs: bpmf (the default; Bayesian matrix factorisation by Gibbs sampling, in bpmf.py), mf (the
same model's point estimate by alternating least squares) and rbm (the seed book's).

One graph serves every request kind, so they batch together. `user` is a known user's index, or -1
for a new user whose ratings (0 = unrated) are in `ratings`: the graph folds the new user in (bpmf, mf:
the ridge regression the fit solves for a user, by conjugate gradients unrolled in the graph; rbm: one
pass up and down the machine). Rated items (the training matrix for a known user, the given ratings
for a new one) are excluded before TopK.
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

from models.common import calibration, loop
from models.common.onnx_export import export_batch_dynamic
from models.recommendation import bpmf, evaluation
from models.recommendation import data as datasets
from models.recommendation.config import MAX_CELLS, Config
from models.recommendation.networks import MF, RBM, Served

OPSET = 17


@dataclass
class Prepared:
    users: list[str]
    items: list[str]
    titles: dict[str, str]
    matrix: np.ndarray  # [U, I] float32 training ratings, 0 = unrated
    seen: np.ndarray  # [U, I] bool: every rating in the dataset, held-out ones too (never recommended again)
    val_u: np.ndarray  # held-out ratings (known users), including each user's leave-one-out item
    val_i: np.ndarray
    val_r: np.ndarray
    loo_u: np.ndarray  # leave-one-out: one held-out item per user
    loo_i: np.ndarray
    rating_min: float
    rating_max: float
    mean: float
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def load_dataset(path: Path, fmt: str, cfg: Config) -> Prepared:
    return prepare(cfg, datasets.load(path, fmt))


def prepare(cfg: Config, d: datasets.Ratings) -> Prepared:
    """Holds out, for each user with at least 3 ratings, their latest rating at or above their own mean
    (a liked item; random order when there are no timestamps) for leave-one-out, and val_fraction of the
    rest at random; seeded, so a resumed run sees the same split."""
    nu, ni = len(d.users), len(d.items)
    if nu * ni > MAX_CELLS:
        raise ValueError(f"{nu} users x {ni} items is over {MAX_CELLS} cells, more than this family's dense "
                         "matrices hold")
    rng = np.random.default_rng(cfg.seed)
    n = len(d.r)
    key = d.t.astype(np.float64) if d.t is not None else rng.random(n)
    counts = np.bincount(d.u, minlength=nu)
    liked = d.r >= (np.bincount(d.u, d.r, minlength=nu) / np.maximum(counts, 1))[d.u]
    order = np.lexsort((rng.random(n), key, liked, d.u))  # by user, liked last, then time
    last = order[np.r_[np.nonzero(np.diff(d.u[order]))[0], n - 1]]
    loo = last[(counts[d.u[last]] >= 3) & liked[last]]
    held = np.zeros(n, bool)
    held[loo] = True
    rest = np.nonzero(~held)[0]
    held[rng.choice(rest, int(round(len(rest) * cfg.val_fraction)), replace=False)] = True
    if held.all() or not held.any() and n > 1:
        held[:] = False
        held[rng.choice(n, max(1, n // 10), replace=False)] = True
    matrix = np.zeros((nu, ni), np.float32)
    matrix[d.u[~held], d.i[~held]] = d.r[~held]
    seen = np.zeros((nu, ni), bool)
    seen[d.u, d.i] = True
    tr = d.r[~held]
    return Prepared(d.users, d.items, d.titles, matrix, seen, d.u[held], d.i[held], d.r[held], d.u[loo], d.i[loo],
                    float(d.r.min()), float(d.r.max()), float(tr.mean()) if len(tr) else float(d.r.mean()),
                    d.source, {"max_k": cfg.max_k})


def build(cfg: Config, data: Prepared) -> nn.Module:
    return {"bpmf": bpmf.BPMF, "mf": MF, "rbm": RBM}[cfg.arch](cfg, data)


def _rbm_steps(cfg: Config, data: Prepared) -> int:
    return math.ceil(data.matrix.shape[0] / cfg.batch_size)


def total_steps(cfg: Config, data: Prepared) -> int:
    return cfg.epochs * (_rbm_steps(cfg, data) if cfg.arch == "rbm" else 1)


@torch.no_grad()
def _als_sweep(model: MF, m: torch.Tensor) -> None:
    """One sweep: every item's (q_i, b_i) given the users, then every user's (p_u, b_u) given the items.
    Users last, so a known user's factors are exactly what folding them in from their ratings gives."""
    if model.p.abs().sum() > 0:  # the first sweep starts from random item factors
        phi = _ridge(model, m.t(), model.p, model.bu)
        model.q.copy_(phi[:, :-1])
        model.bi.copy_(phi[:, -1])
    theta = _ridge(model, m, model.q, model.bi)
    model.p.copy_(theta[:, :-1])
    model.bu.copy_(theta[:, -1])


def _ridge(model: MF, m: torch.Tensor, f: torch.Tensor, other_bias: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """For each row of m [R, J] (0 = unrated): the exact argmin over (x, c) of
    sum_j (m_j - mean - other_bias_j - x . f_j - c)^2 + penalty, by a batched solve."""
    f1 = torch.cat([f, torch.ones(f.shape[0], 1, device=f.device)], 1)  # [J, D+1]
    ff = (f1.unsqueeze(2) * f1.unsqueeze(1)).reshape(f1.shape[0], -1)  # [J, (D+1)^2]
    out = []
    for s in range(0, m.shape[0], chunk):
        rows = m[s:s + chunk]
        mask = (rows > 0).to(rows.dtype)
        a = torch.matmul(mask, ff).reshape(-1, f1.shape[1], f1.shape[1]) + model.penalty(mask.sum(1))
        b = torch.matmul(mask * (rows - model.mean - other_bias), f1)
        out.append(torch.linalg.solve(a, b))
    return torch.cat(out)


class _Sweeps(loop.Recipe):
    """mf and rbm in models/common/loop.py. mf: an epoch is one ALS sweep (one step); rbm: CD-k over
    mini-batches of users, the mean squared reconstruction error of rated entries reported as the loss."""

    def __init__(self, cfg: Config, data: Prepared, device: torch.device, init: None, resume: dict[str, Any] | None):
        self.cfg, self.data, self.device = cfg, data, device
        self.model = build(cfg, data).to(device)
        self.m = torch.from_numpy(data.matrix).to(device)
        self.rated = self.m > 0
        self.epochs = cfg.epochs
        self.steps_per_epoch = _rbm_steps(cfg, data) if cfg.arch == "rbm" else 1
        self.examples, self.batch_size = self.m.shape[0], cfg.batch_size

    def batches(self, epoch: int) -> list[Any]:
        return super().batches(epoch) if self.cfg.arch == "rbm" else [None]

    def start_epoch(self, epoch: int) -> None:
        self.model.train()
        self.total = 0.0

    @torch.no_grad()
    def train_step(self, users: torch.Tensor | None, epoch: int, i: int) -> loop.Step:
        if self.cfg.arch == "mf":
            _als_sweep(self.model, self.m)
            pred = self.model(torch.arange(self.m.shape[0], device=self.device), torch.zeros_like(self.m))
            self.total = float(((pred - self.m)[self.rated] ** 2).mean())
            return loop.Step(None, {"loss": self.total})
        self.total += _cd_step(self.cfg, self.model, self.m[users] / self.model.hi)
        return loop.Step(None, {"loss": self.total / (i + 1)})

    def end_epoch(self, done: int, metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        loss = self.total / self.steps_per_epoch
        val = evaluate(self.model, self.data, self.device, ranking=False)
        return {"train_loss": loss, "val_rmse": val["rmse"]}, {"epoch": float(done), "val_rmse": val["rmse"],
                                                               "val_mae": val["mae"]}

    def finish(self, metrics: dict[str, float]) -> tuple[nn.Module, dict[str, float]]:
        return self.model, {"train_loss": metrics.get("train_loss", float("nan"))}


def train(cfg: Config, data: Prepared, device: torch.device | str, report: loop.Report,
          checkpoint: loop.Checkpoint | None = None,
          resume: dict[str, Any] | None = None) -> tuple[nn.Module, dict[str, float]]:
    model, metrics = loop.fit(bpmf.Sampler if cfg.arch == "bpmf" else _Sweeps, cfg, data, device, report,
                              checkpoint, resume)
    data.extra["biases"] = biases(model, data)
    return model, metrics


@torch.no_grad()
def biases(model: nn.Module, data: Prepared, damping: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """(user [U], item [I]) offsets from the mean, serving's answer where one side is cold (rbm: damped means)."""
    if isinstance(model, bpmf.BPMF):
        return model.users[:, :, -1].mean(1).cpu().numpy(), model.items[:, :, -1].mean(0).cpu().numpy()
    if isinstance(model, MF):
        return model.bu.detach().cpu().numpy(), model.bi.detach().cpu().numpy()
    m, rated = data.matrix.astype(np.float64), data.matrix > 0
    item = np.where(rated, m - data.mean, 0).sum(0) / (rated.sum(0) + damping)
    user = np.where(rated, m - data.mean - item, 0).sum(1) / (rated.sum(1) + damping)
    return user, item


def _cd_step(cfg: Config, model: RBM, v0: torch.Tensor) -> float:
    """One CD-k update on a mini-batch of users' visible units -> its squared reconstruction error. Unrated
    entries are zero in the data and are held at zero in the negative phase too, so they add nothing to
    the gradient: the machine learns each item from the users who rated it."""
    rated = (v0 > 0).to(v0.dtype)
    h0 = model.hidden(v0)
    vk, hk = v0, h0
    for _ in range(cfg.cd_k):
        vk = model.visible(torch.bernoulli(hk)) * rated  # unrated units stay at zero in both phases
        hk = model.hidden(vk)
    n = v0.shape[0]
    model.w += cfg.lr * (v0.t() @ h0 - vk.t() @ hk) / n
    model.vb += cfg.lr * (v0 - vk).mean(0)
    model.hb += cfg.lr * (h0 - hk).mean(0)
    recon = model.visible(h0)
    return float((((recon - v0) * model.hi) ** 2)[v0 > 0].mean())


@torch.no_grad()
def predict_known(model: nn.Module, data: Prepared, users: np.ndarray, device: torch.device,
                  batch_size: int = 512) -> np.ndarray:
    """Full predicted rows [len(users), I] for known user indices."""
    model.eval()
    out, ni = [], data.matrix.shape[1]
    for s in range(0, len(users), batch_size):
        u = torch.from_numpy(users[s:s + batch_size]).to(device)
        if isinstance(model, bpmf.BPMF):  # skips the fold-in its graph computes for every row
            out.append(model.predict_known(u).cpu().numpy())
        else:
            out.append(model(u, torch.zeros(len(u), ni, device=device)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, ni), np.float32)


def evaluate(model: nn.Module, data: Prepared, device: torch.device | str, ranking: bool = True) -> dict[str, float]:
    device = torch.device(device)
    return evaluation.scores(data, lambda users: predict_known(model, data, users, device), ranking)


def example_inputs(data: Prepared, n: int = 32) -> dict[str, np.ndarray]:
    return _requests(data, np.arange(min(n, data.matrix.shape[0]), dtype=np.int64))


def _requests(data: Prepared, users: np.ndarray) -> dict[str, np.ndarray]:
    """Half known users, half new users folded in from a known user's training ratings."""
    users = users.astype(np.int64)
    ratings = np.zeros((len(users), data.matrix.shape[1]), np.float32)
    half = len(users) // 2
    ratings[half:] = data.matrix[users[half:]]
    users[half:] = -1
    return {"user": users, "ratings": ratings}


def calibration_batches(data: Prepared, count: int, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Training users, half known and half folded in from their training ratings, as the ONNX model takes
    them (models.contract.Family.calibration)."""
    for idx in calibration.rows(data.matrix.shape[0], count, batch_size):
        yield _requests(data, idx)


def export_onnx(model: nn.Module, path: Path, data: Prepared) -> None:
    model = model.to("cpu").eval()
    k = min(data.extra.get("max_k", 100), data.matrix.shape[1])
    feeds = example_inputs(data, 2)
    export_batch_dynamic(Served(model, k), (torch.from_numpy(feeds["user"]), torch.from_numpy(feeds["ratings"])),
                         path, ["user", "ratings"], ["predicted", "top_scores", "top_items"], OPSET)


def version_metadata(cfg: Config, data: Prepared) -> dict[str, Any]:
    # user_bias and item_bias, aligned with users and items: serving's answer for a cold user or item
    ub, ib = ([round(float(b), 4) for b in side] for side in data.extra.get("biases") or ([], []))
    return {"users": list(data.users), "items": list(data.items), "titles": dict(data.titles),
            "rating_range": [data.rating_min, data.rating_max], "mean_rating": data.mean,
            "user_bias": ub, "item_bias": ib,
            "max_k": min(cfg.max_k, len(data.items)), "arch": cfg.arch, "source": data.source}
