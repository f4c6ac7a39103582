"""The mf and rbm networks and the served graph (torch; exported to ONNX): each takes (user [N] int64,
ratings [N, I] float32) and gives predicted ratings [N, I]. bpmf's is in bpmf.py, with its sampler."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

from models.recommendation.config import Config
from models.recommendation.graph import excluded, solve_cg

EXCLUDED = -1e9


class MF(nn.Module):
    """rating(u, i) = mean + b_u + b_i + p_u . q_i, clipped to the data's range."""

    def __init__(self, cfg: Config, data: Any):
        super().__init__()
        nu, ni = data.matrix.shape
        g = torch.Generator().manual_seed(cfg.seed)
        self.p = nn.Parameter(torch.zeros(nu, cfg.factors))
        self.bu = nn.Parameter(torch.zeros(nu))
        self.q = nn.Parameter(0.1 * torch.randn(ni, cfg.factors, generator=g))
        self.bi = nn.Parameter(torch.zeros(ni))
        self.register_buffer("rated", torch.from_numpy(data.seen).to(torch.uint8))
        self.mean, self.lo, self.hi = data.mean, data.rating_min, data.rating_max
        self.factors = cfg.factors
        scaled = torch.full((cfg.factors + 1,), cfg.reg)
        scaled[-1] = 0.0
        fixed = torch.zeros(cfg.factors + 1)
        fixed[-1] = cfg.bias_reg
        self.register_buffer("scaled", torch.diag(scaled), persistent=False)
        self.register_buffer("fixed", torch.diag(fixed), persistent=False)

    def penalty(self, n: torch.Tensor) -> torch.Tensor:  # n [N] rating counts -> [N, D+1, D+1]
        """Factors: reg x the rating count (ALS-WR); biases: bias_reg, so rarely rated items shrink to 0."""
        return n.clamp(min=1.0).reshape(-1, 1, 1) * self.scaled + self.fixed

    def fold_in(self, ratings: torch.Tensor) -> torch.Tensor:  # [N, I] -> [N, D+1] user factors and bias
        mask = (ratings > 0).to(ratings.dtype)
        f = torch.cat([self.q, torch.ones_like(self.bi).unsqueeze(1)], 1)  # [I, D+1]
        a = torch.matmul(mask.unsqueeze(1) * f.t().unsqueeze(0), f) + self.penalty(mask.sum(1))
        b = torch.matmul(mask * (ratings - self.mean - self.bi), f)
        return solve_cg(a, b, self.factors + 1)

    def excluded(self, user: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:  # [N, I] bool
        return excluded(self.rated, user, ratings)

    def forward(self, user: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:
        idx = user.clamp(min=0)
        known = torch.cat([self.p[idx], self.bu[idx].unsqueeze(1)], 1)  # [N, D+1]
        theta = torch.where((user >= 0).unsqueeze(1), known, self.fold_in(ratings))
        pred = self.mean + self.bi + torch.matmul(theta[:, :-1], self.q.t()) + theta[:, -1:]
        return pred.clamp(self.lo, self.hi)


class RBM(nn.Module):
    """Bernoulli RBM over the items: visible = rating / max (0 = unrated), reconstruction x max = prediction."""

    def __init__(self, cfg: Config, data: Any):
        super().__init__()
        nu, ni = data.matrix.shape
        g = torch.Generator().manual_seed(cfg.seed)
        self.w = nn.Parameter(0.01 * torch.randn(ni, cfg.hidden, generator=g))
        self.hb = nn.Parameter(torch.zeros(cfg.hidden))
        # visible biases start at each item's mean rating (the global mean for an item nobody rated)
        m = data.matrix
        count = (m > 0).sum(0)
        mean = np.where(count > 0, m.sum(0) / np.maximum(count, 1), data.mean) / data.rating_max
        mean = np.clip(mean, 0.02, 0.98)
        self.vb = nn.Parameter(torch.from_numpy(np.log(mean / (1 - mean)).astype(np.float32)))
        self.register_buffer("matrix", torch.from_numpy(data.matrix))
        self.register_buffer("rated", torch.from_numpy(data.seen).to(torch.uint8))
        self.lo, self.hi = data.rating_min, data.rating_max

    def hidden(self, v: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.matmul(v, self.w) + self.hb)

    def visible(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.matmul(h, self.w.t()) + self.vb)

    def excluded(self, user: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:  # [N, I] bool
        return excluded(self.rated, user, ratings)

    def _input(self, user: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:
        return torch.where((user >= 0).unsqueeze(1), self.matrix[user.clamp(min=0)], ratings)

    def forward(self, user: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:
        v = self._input(user, ratings) / self.hi
        return (self.visible(self.hidden(v)) * self.hi).clamp(self.lo, self.hi)


class Served(nn.Module):
    """What the ONNX file holds: predictions, and the top K unrated items by TopK."""

    def __init__(self, model: nn.Module, k: int):
        super().__init__()
        self.model, self.k = model, k

    def forward(self, user: torch.Tensor, ratings: torch.Tensor):
        pred = self.model(user, ratings)
        masked = torch.where(self.model.excluded(user, ratings), torch.full_like(pred, EXCLUDED), pred)
        scores, items = torch.topk(masked, self.k, dim=1)
        return pred, scores, items
