"""The serving benchmark's reference model: a CIFAR-style ResNet-18 (3x3 stem, no max-pool, BasicBlocks
[2, 2, 2, 2] at widths 64-512; 11.2M parameters) for 32x32x3 images, exported to ONNX. Weights are
random: the benchmark measures speed, not accuracy. The blocks are the classification family's."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.classification.networks import BasicBlock


class ResNet18(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(512, classes)

    def forward(self, x):  # x [N, 3, 32, 32]
        y = self.layers(self.stem(x))  # [N, 512, 4, 4]
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))  # [N, classes]


def export(path: Path, seed: int = 0) -> int:
    """Writes the ONNX file; returns the parameter count."""
    torch.manual_seed(seed)
    model = ResNet18().eval()
    torch.onnx.export(model, torch.zeros(1, 3, 32, 32), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    return sum(p.numel() for p in model.parameters())
