"""The detector (torch; workers and tests only): a small ResNet + FPN with a CenterNet/TTFNet-style head
at stride 4, whose boxes are decoded in the graph (suppression runs in numpy: serving.py)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

STRIDE = 4


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class Block(nn.Module):
    """ResNet basic block."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.skip(x))


class Detector(nn.Module):
    def __init__(self, classes: int, size: tuple[int, int], width: int = 32):
        super().__init__()
        w = width
        self.stem = conv_bn(3, w, 3, 2)  # /2
        self.c4 = Block(w, w, 2)  # /4
        self.c8 = nn.Sequential(Block(w, 2 * w, 2), Block(2 * w, 2 * w))  # /8
        self.c16 = nn.Sequential(Block(2 * w, 4 * w, 2), Block(4 * w, 4 * w))  # /16
        self.lat16, self.lat8, self.lat4 = nn.Conv2d(4 * w, w, 1), nn.Conv2d(2 * w, w, 1), nn.Conv2d(w, w, 1)
        self.head = nn.Sequential(conv_bn(w, w), conv_bn(w, w))  # shared by both outputs
        self.cls, self.reg = nn.Conv2d(w, classes, 1), nn.Conv2d(w, 4, 1)
        nn.init.constant_(self.cls.bias, -math.log((1 - 0.01) / 0.01))
        nn.init.constant_(self.reg.bias, math.log(2.0))  # initial sides: 2 cells
        h, wd = size[0] // STRIDE, size[1] // STRIDE
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(wd), indexing="ij")
        centres = torch.stack([xs, ys], -1).reshape(-1, 2).float().add(0.5).mul(STRIDE)  # [A, 2] pixels
        self.register_buffer("centres", centres, persistent=False)

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [N, 3, S, S] in [0, 1] -> class logits [N, C, S/4, S/4], side distances in cells [N, 4, S/4, S/4]."""
        x = self.stem((x - 0.5) * 4.0)
        c4 = self.c4(x)
        c8 = self.c8(c4)
        c16 = self.c16(c8)
        p8 = self.lat8(c8) + F.interpolate(self.lat16(c16), scale_factor=2.0, mode="nearest")
        p4 = self.head(self.lat4(c4) + F.interpolate(p8, scale_factor=2.0, mode="nearest"))
        return self.cls(p4), torch.exp(self.reg(p4).clamp(max=8.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """-> [N, A, 4 + C]: boxes x1, y1, x2, y2 in input pixels, then class scores."""
        logits, sides = self.raw(x)
        n = x.shape[0]
        ltrb = sides.flatten(2).transpose(1, 2) * STRIDE  # [N, A, 4]
        c = self.centres.unsqueeze(0)
        boxes = torch.cat([c - ltrb[..., :2], c + ltrb[..., 2:]], -1)
        return torch.cat([boxes, torch.sigmoid(logits).flatten(2).transpose(1, 2)], -1).reshape(n, -1, boxes.shape[-1]
                                                                                                  + logits.shape[1])
