"""Pieces every recommendation graph shares (torch; exported to ONNX, so opset-17 operators only)."""

from __future__ import annotations

import torch


def solve_cg(a: torch.Tensor, b: torch.Tensor, iters: int) -> torch.Tensor:
    """a [N, D, D] symmetric positive definite, b [N, D] -> x [N, D]: conjugate gradients, unrolled
    (opset 17 has no linear solve; D iterations are exact up to rounding)."""
    x = torch.zeros_like(b)
    r = b
    p = r
    rs = (r * r).sum(1, keepdim=True)
    for _ in range(iters):
        ap = torch.matmul(a, p.unsqueeze(2)).squeeze(2)
        alpha = rs / ((p * ap).sum(1, keepdim=True) + 1e-20)
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = (r * r).sum(1, keepdim=True)
        p = r + rs_new / (rs + 1e-20) * p
        rs = rs_new
    return x


def excluded(rated: torch.Tensor, user: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:
    """[N, I] bool: what TopK must skip, the training matrix's items for a known user (user >= 0), the
    given ratings for a new one (user -1). `rated` is uint8 [U, I] (ORT has no bool Where)."""
    known = (user >= 0).unsqueeze(1)
    return (known & (rated[user.clamp(min=0)] > 0)) | (~known & (ratings > 0))
