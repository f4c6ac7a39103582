"""Whether torch may use oneDNN (mkldnn) for a network's convolutions (torch: training side only).

torch 2.13's oneDNN kernels corrupt the heap or crash the process in the backward pass of some
convolutions with fewer than 8 channels on AVX2-only CPUs (seen on the project's AMD EPYC machines: a
1x1 stride-2 shortcut of a width-4 ResNet, a width-4 captioning encoder); torch's own kernels are correct
and, at such widths, about as fast. A worker that dies mid-run loses the run's progress since its last
checkpoint, so a training run turns oneDNN off when its network has such a convolution, on before."""

from __future__ import annotations

import torch
from torch import nn

NARROW = 8


def use_onednn_for(model: nn.Module) -> bool:
    """Sets torch's oneDNN switch for this process: off when a convolution of `model` has fewer than 8
    output channels, else on. Returns the setting."""
    narrow = any(isinstance(m, nn.Conv2d) and m.out_channels < NARROW for m in model.modules())
    torch.backends.mkldnn.enabled = not narrow
    return not narrow
