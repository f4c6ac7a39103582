"""Image batches as the networks take them (torch: training side only)."""

from __future__ import annotations

from typing import Any

import torch


class Normalise:
    """uint8 [N, H, W, C] -> float [N, C, H, W] scaled to [0, 1] then (x - mean) / std, as serving does.
    `data` is a family's prepared dataset with per-channel .mean and .std (classification, captioning)."""

    def __init__(self, data: Any, device: torch.device | str):
        self.mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)

    def __call__(self, x_uint8: torch.Tensor) -> torch.Tensor:  # laid out channels-last in memory, as permuted
        return (x_uint8.permute(0, 3, 1, 2).float() / 255.0 - self.mean) / self.std
