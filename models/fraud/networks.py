"""The fraud networks (torch; exported to ONNX). Each scales its raw input itself (log1p of the log
columns, then (x - mean) / std, constants in the graph) and gives [N, 1 + F]: the score, then each
feature's contribution to it."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn


class Scale(nn.Module):
    def __init__(self, data: Any):
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
    def __init__(self, data: Any, hidden: list[int]):
        super().__init__()
        self.scale = Scale(data)
        self.ae = AutoEncoder(len(data.features), hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, F] -> [N, 1 + F]
        err = self.ae.errors(self.scale(x)) / x.shape[1]
        return torch.cat([err.sum(1, keepdim=True), err], 1)


class Classifier(nn.Module):
    """mlp: z -> logit. hybrid: [z, per-feature reconstruction error of an autoencoder] -> logit."""

    def __init__(self, data: Any, hidden: int, dropout: float, hybrid: bool):
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
