"""Bayesian matrix factorisation with user and item biases, fitted by Gibbs sampling (torch; workers only).

Salakhutdinov & Mnih, "Bayesian probabilistic matrix factorization using Markov chain Monte Carlo" (ICML
2008), with the biases folded into the vectors: a user is x_u = [p_u, b_u], an item y_i = [q_i, c_i], and

    rating(u, i) ~ N(mean + p_u . q_i + b_u + c_i, 1 / alpha)

Each side's vectors have a Gaussian prior N(m, Lambda^-1) whose (m, Lambda) has a Gaussian-Wishart
hyperprior (m0 = 0, beta0 = 2, W0 = I, nu0 = D + 1), and alpha a Gamma(1, 1) prior. One sweep of the
sampler draws the users' (m, Lambda), every user given the items, the items' (m, Lambda), every item given
the users, then alpha. After `burn_in` sweeps, `samples` evenly spaced draws are kept. Nothing is tuned
by hand: the regularisation that ALS needs (`reg`, `bias_reg`) is inferred here.

What is served: for each kept draw s, the items y^s, the users' prior (m^s, Lambda^s) and alpha^s; a user
is the mean of their conditional posterior given those (a ridge regression on their ratings), and a
prediction is the average over draws. The same solve folds in a new user from a handful of ratings, so a
known user and the same user folded in from the same ratings get the same predictions; averaging
conditional means rather than the sampled user vectors (Rao-Blackwellisation) also lowers the variance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.distributions import Chi2, Gamma

from models.common import loop
from models.recommendation.config import Config
from models.recommendation.graph import excluded, solve_cg

CHECKPOINT_EVERY = 25  # sweeps: a checkpoint holds every kept draw, so not after every sweep
VAL_EVERY = 10
CHUNK = 2048  # rows solved at once
BETA0 = 2.0


class BPMF(nn.Module):
    """(user [N], ratings [N, I]) -> predicted ratings [N, I], averaged over the kept draws."""

    def __init__(self, cfg: Config, data: Any):
        super().__init__()
        nu, ni = data.matrix.shape
        s, d = cfg.samples, cfg.factors + 1
        self.register_buffer("users", torch.zeros(nu, s, d))  # per draw: the user's conditional posterior mean
        self.register_buffer("items", torch.zeros(s, ni, d))
        self.register_buffer("prior_mean", torch.zeros(s, d))
        self.register_buffer("prior_prec", torch.eye(d).repeat(s, 1, 1))
        self.register_buffer("alpha", torch.ones(s))
        self.register_buffer("rated", torch.from_numpy(data.seen).to(torch.uint8))
        self.mean, self.lo, self.hi = data.mean, data.rating_min, data.rating_max

    def excluded(self, user: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:
        return excluded(self.rated, user, ratings)

    def fold_in(self, ratings: torch.Tensor) -> torch.Tensor:
        """[N, I] ratings (0 = unrated) -> [N, S, D+1]: the user's conditional posterior mean under each draw.
        One draw at a time: broadcasting over all draws at once would hold an [N, S, D+1, I] tensor."""
        mask = (ratings > 0).to(ratings.dtype)
        s, ni, d = self.items.shape
        ones = torch.ones_like(self.items[0, :, :1])
        a, b = [], []
        for k in range(s):
            f = torch.cat([self.items[k, :, :-1], ones], 1)  # [I, D+1]: the item's factors, and 1 for the bias
            resid = mask * (ratings - self.mean - self.items[k, :, -1])
            a.append(self.alpha[k] * torch.matmul(mask.unsqueeze(1) * f.t().unsqueeze(0), f) + self.prior_prec[k])
            b.append(self.alpha[k] * torch.matmul(resid, f) + torch.matmul(self.prior_prec[k], self.prior_mean[k]))
        n = ratings.shape[0]
        # twice D+1 iterations: a heavy rater's system is ill-conditioned enough for float32 CG to need them
        x = solve_cg(torch.stack(a, 1).reshape(n * s, d, d), torch.stack(b, 1).reshape(n * s, d), 2 * d)
        return x.reshape(n, s, d)

    def _predict(self, theta: torch.Tensor) -> torch.Tensor:  # [N, S, D+1] -> [N, I]
        s, ni, _ = self.items.shape
        q = self.items[:, :, :-1].permute(0, 2, 1).reshape(-1, ni)  # [S*D, I], matching theta's [N, S*D]
        pred = (self.mean + self.items[:, :, -1].mean(0) + theta[:, :, -1].mean(1, keepdim=True)
                + torch.matmul(theta[:, :, :-1].reshape(theta.shape[0], -1), q) / s)
        return pred.clamp(self.lo, self.hi)

    def forward(self, user: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:
        known = self.users[user.clamp(min=0)]
        return self._predict(torch.where((user >= 0).reshape(-1, 1, 1), known, self.fold_in(ratings)))

    def predict_known(self, user: torch.Tensor) -> torch.Tensor:
        """forward() for known users only, without the fold-in the graph computes for every row."""
        return self._predict(self.users[user])


# -- the sampler (float64 throughout: its Cholesky factors see precisions of thousands)

def _features(other: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The other side's vectors [J, D+1] -> (features [J, D+1] with a 1 where their bias was, their biases)."""
    f = other.clone()
    bias = f[:, -1].clone()
    f[:, -1] = 1.0
    return f, bias


def conditional(m: torch.Tensor, other: torch.Tensor, mean: float, prior_mean: torch.Tensor,
                prior_prec: torch.Tensor, alpha: torch.Tensor, draw: bool) -> torch.Tensor:
    """For each row of m [R, J] (ratings, 0 = unrated): its vector's Gaussian conditional given the other
    side's vectors, the prior and alpha; a draw from it, or (draw=False) its mean. -> [R, D+1]"""
    f, other_bias = _features(other)
    d = f.shape[1]
    ff = (f.unsqueeze(2) * f.unsqueeze(1)).reshape(f.shape[0], d * d)
    prior_b = prior_prec @ prior_mean
    out = []
    for s in range(0, m.shape[0], CHUNK):
        rows = m[s:s + CHUNK].to(f.dtype)
        mask = (rows > 0).to(f.dtype)
        a = alpha * torch.matmul(mask, ff).reshape(-1, d, d) + prior_prec
        b = alpha * torch.matmul(mask * (rows - mean - other_bias), f) + prior_b
        chol = torch.linalg.cholesky(a)
        x = torch.cholesky_solve(b.unsqueeze(2), chol)
        if draw:  # + L^-T z has covariance (L L^T)^-1 = a^-1
            z = torch.randn(x.shape, dtype=x.dtype).to(x.device)
            x = x + torch.linalg.solve_triangular(chol.mT, z, upper=True)
        out.append(x.squeeze(2))
    return torch.cat(out)


def hyperparameters(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A draw of (m, Lambda) from their Gaussian-Wishart posterior given the vectors x [n, D+1]."""
    device, x = x.device, x.cpu()
    n, d = x.shape
    xbar = x.mean(0)
    centred = x - xbar
    beta_n, nu_n = BETA0 + n, d + n
    w_inv = torch.eye(d, dtype=x.dtype) + centred.t() @ centred + (BETA0 * n / beta_n) * torch.outer(xbar, xbar)
    w = torch.linalg.inv(w_inv)
    # Lambda ~ Wishart(W, nu_n) by Bartlett's decomposition: L A (L A)^T, L = chol(W), A lower triangular
    # with sqrt(chi2(nu_n - i)) on the diagonal and N(0, 1) below it
    bartlett = torch.randn(d, d, dtype=x.dtype).tril(-1)
    bartlett += torch.diag(Chi2(torch.arange(nu_n, nu_n - d, -1, dtype=x.dtype)).sample().sqrt())
    la = torch.linalg.cholesky((w + w.t()) / 2) @ bartlett
    lam = la @ la.t()
    # m ~ N(mu_n, (beta_n Lambda)^-1): mu_n + (beta_n Lambda)^-1/2 z via the Cholesky factor of beta_n Lambda
    chol = torch.linalg.cholesky(beta_n * lam)
    z = torch.randn(d, 1, dtype=x.dtype)
    m = n * xbar / beta_n + torch.linalg.solve_triangular(chol.t(), z, upper=True).squeeze(1)
    return m.to(device), lam.to(device)


def _predicted(u: torch.Tensor, v: torch.Tensor, mean: float, ru: torch.Tensor, ri: torch.Tensor) -> torch.Tensor:
    """The current draw's ratings for the pairs (ru, ri), unclipped."""
    return mean + (u[ru, :-1] * v[ri, :-1]).sum(1) + u[ru, -1] + v[ri, -1]


class Sampler(loop.Recipe):
    """The Gibbs sampler in models/common/loop.py: an epoch is one sweep (one step, reported with the mean
    squared error of the training ratings under the current draw, and every VAL_EVERY sweeps the
    validation RMSE); the model is built from the kept draws at the end."""

    shuffle = "none"
    steps_per_epoch = 1
    checkpoint_every = CHECKPOINT_EVERY

    def __init__(self, cfg: Config, data: Any, device: torch.device, init: None, resume: dict[str, Any] | None):
        self.cfg, self.data, self.device = cfg, data, device
        self.epochs = cfg.epochs
        dt = torch.float64
        self.m = m = torch.from_numpy(data.matrix).to(device)
        nu, ni = m.shape
        d, s_total = cfg.factors + 1, cfg.samples
        self.spacing = (cfg.epochs - cfg.burn_in) // s_total
        rows, cols = np.nonzero(data.matrix)
        self.ru, self.ri = torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)
        self.rr = m[self.ru, self.ri].to(dt)
        self.vu, self.vi = torch.from_numpy(data.val_u).to(device), torch.from_numpy(data.val_i).to(device)
        self.vr = torch.from_numpy(np.asarray(data.val_r, np.float64)).to(device)
        self.st = {"u": (0.1 * torch.randn(nu, d, dtype=dt)).to(device),
                   "v": (0.1 * torch.randn(ni, d, dtype=dt)).to(device),
                   "alpha": torch.tensor(2.0, dtype=dt, device=device),
                   "items": torch.zeros(s_total, ni, d, dtype=dt, device=device),
                   "prior_mean": torch.zeros(s_total, d, dtype=dt, device=device),
                   "prior_prec": torch.zeros(s_total, d, d, dtype=dt, device=device),
                   "kept_alpha": torch.zeros(s_total, dtype=dt, device=device),
                   "val_sum": torch.zeros(len(self.vr), dtype=dt, device=device), "kept": 0, "averaged": 0}
        self.mse = float("nan")

    def batches(self, epoch: int) -> list[None]:
        return [None]

    def train_step(self, _: None, epoch: int, i: int) -> loop.Step:
        cfg, data, st, dt = self.cfg, self.data, self.st, torch.float64
        pm, pp = hyperparameters(st["u"])
        st["u"] = conditional(self.m, st["v"], data.mean, pm, pp, st["alpha"], draw=True)
        qm, qp = hyperparameters(st["v"])
        st["v"] = conditional(self.m.t(), st["u"], data.mean, qm, qp, st["alpha"], draw=True)
        sse = float(((self.rr - _predicted(st["u"], st["v"], data.mean, self.ru, self.ri)) ** 2).sum())
        st["alpha"] = Gamma(torch.tensor(1.0 + len(self.rr) / 2, dtype=dt),
                            torch.tensor(1.0 + sse / 2, dtype=dt)).sample().to(self.device)
        self.mse = sse / max(len(self.rr), 1)
        done = epoch + 1
        values = {"loss": self.mse}
        val_every = len(self.vr) and (done % VAL_EVERY == 0 or done == cfg.epochs)
        if done > cfg.burn_in or val_every:
            drawn = _predicted(st["u"], st["v"], data.mean, self.vu, self.vi).clamp(data.rating_min, data.rating_max)
        if done > cfg.burn_in:
            st["val_sum"] += drawn
            st["averaged"] += 1
            if (done - cfg.burn_in) % self.spacing == 0 and st["kept"] < cfg.samples:
                k = st["kept"]
                st["items"][k], st["prior_mean"][k], st["prior_prec"][k] = st["v"], pm, pp
                st["kept_alpha"][k] = st["alpha"]
                st["kept"] = k + 1
        if val_every:
            # before burn-in the current draw; after, the running average of the draws so far
            pred = st["val_sum"] / st["averaged"] if st["averaged"] else drawn
            values["val_rmse"] = float(((pred - self.vr) ** 2).mean().sqrt())
        return loop.Step(None, values)

    def end_epoch(self, done: int, metrics: dict[str, float]) -> tuple[dict[str, float], None]:
        return {"train_loss": self.mse}, None

    def state(self) -> dict[str, Any]:
        return {"bpmf": self.st}

    def load_state(self, state: dict[str, Any]) -> None:
        self.st = {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in state["bpmf"].items()}

    def finish(self, metrics: dict[str, float]) -> tuple[BPMF, dict[str, float]]:
        return (_served(self.cfg, self.data, self.m, self.st, self.device),
                {"train_loss": metrics.get("train_loss", float("nan"))})


@torch.no_grad()
def _served(cfg: Config, data: Any, m: torch.Tensor, st: dict[str, Any], device: torch.device) -> BPMF:
    model = BPMF(cfg, data).to(device)
    kept = st["kept"]
    users = torch.stack([conditional(m, st["items"][k], data.mean, st["prior_mean"][k], st["prior_prec"][k],
                                     st["kept_alpha"][k], draw=False) for k in range(kept)], 1)
    model.users.copy_(users.to(torch.float32))
    model.items.copy_(st["items"][:kept].to(torch.float32))
    model.prior_mean.copy_(st["prior_mean"][:kept].to(torch.float32))
    model.prior_prec.copy_(st["prior_prec"][:kept].to(torch.float32))
    model.alpha.copy_(st["kept_alpha"][:kept].to(torch.float32))
    return model
