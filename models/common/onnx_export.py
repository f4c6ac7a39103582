"""Exporting a family's torch module to ONNX the way serving needs it (torch: training side only)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


def export_batch_dynamic(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, inputs: list[str],
                         outputs: list[str], opset: int) -> None:
    """The first dimension of every input and output is the dynamic "batch" axis, so the batcher can
    stack requests. The TorchScript exporter: its graphs load in every ONNX Runtime we ship."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(module, example, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes={n: {0: "batch"} for n in inputs + outputs}, opset_version=opset,
                          dynamo=False)
