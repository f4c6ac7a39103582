"""Calibration batches for int8 quantisation (issue 20; numpy and ONNX Runtime only): which rows of a
run's training split they hold, the image batches as the graphs take them, and, for an encoder-decoder,
the decoder-step feeds they lead to. The shape of a family's batches is declared with
models.contract.Family.calibration."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from models.common import decoding

ENCODER = "model.onnx"  # the keys of a multi_file family's batches: the version's graph files
DECODER = "decoder.onnx"
SEED = 0


def rows(n: int, count: int, batch_size: int) -> list[np.ndarray]:
    """Up to `count` batches of `batch_size` row indices of a split of n rows, from a permutation of a fixed
    seed: the same batches every time for the same split, spread over it (an image folder's rows come
    class by class). Fewer, or a smaller last one, when the split is small."""
    order = np.random.default_rng(SEED).permutation(n)[:max(0, count) * max(1, batch_size)]
    return [np.sort(order[i:i + batch_size]) for i in range(0, len(order), max(1, batch_size))]


def images(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 [N, H, W, C] -> float32 [N, C, H, W], scaled to [0, 1] then (x - mean) / std, as served."""
    out = x.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    return ((out - m) / s).astype(np.float32)


def decoder_steps(encoder: Any, decoder: Any,
                  batch: dict[str, dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
    """A multi_file family's calibration batch -> the feeds of decoder.onnx at each step, teacher-forced:
    the encoder session runs batch["model.onnx"], then the decoder session steps through the target
    tokens batch["decoder.onnx"]["token"] [B, T] (BOS first), each step's cache the previous step's."""
    seq = decoding.OnnxSeq2Seq(encoder, decoder)
    static, cache = seq.encode(batch[ENCODER])
    tokens = batch[DECODER]["token"]
    for t in range(tokens.shape[1]):
        feeds = {"token": np.ascontiguousarray(tokens[:, t]), **static, **cache}
        if seq.has_step:
            feeds["step"] = np.array([t], np.int64)
        yield feeds
        _, cache = seq.step(tokens[:, :t + 1], static, cache)
