"""Captions decoded with the PyTorch module (torch; workers and tests only): the same numpy search
(models/common/decoding.py) the exported graphs are served with, over a step that carries the LSTM
state as the ONNX decoder does, or over one that recomputes the whole prefix (the parity reference)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.captioning.networks import Captioner, decoding_log_probs
from models.common import decoding
from models.common.normalise import Normalise


def encode(model: Captioner, x: torch.Tensor) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    features, keys, h, c = model.encode(x)
    static = {"features": features.float().cpu().numpy(), "keys": keys.float().cpu().numpy()}
    return static, {"past_h": h.float().cpu().numpy(), "past_c": c.float().cpu().numpy()}


def cached_step(model: Captioner, device: torch.device) -> decoding.Step:
    """A step that feeds the last token and carries the LSTM state: what the ONNX decoder does."""
    def step(prefix, static, cache):
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
        logits, h, c, _ = model.step(t(prefix[:, -1]), t(static["features"]), t(static["keys"]),
                                     t(cache["past_h"]), t(cache["past_c"]))
        return (decoding_log_probs(logits.float()).cpu().numpy(),
                {"past_h": h.float().cpu().numpy(), "past_c": c.float().cpu().numpy()})
    return step


def recompute_step(model: Captioner, device: torch.device) -> decoding.Step:
    """A step that runs the whole prefix again from the encoder's initial state (the cache it is given is
    never advanced): a reference that shares nothing with the ONNX graph's state handling."""
    def step(prefix, static, cache):
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
        features, keys, h, c = t(static["features"]), t(static["keys"]), t(cache["past_h"]), t(cache["past_c"])
        tokens = t(prefix)
        for j in range(tokens.shape[1]):
            logits, h, c, _ = model.step(tokens[:, j], features, keys, h, c)
        return decoding_log_probs(logits.float()).cpu().numpy(), cache
    return step


@torch.no_grad()
def generate(model: Captioner, data: Any, images: np.ndarray, device: torch.device | str, beam_size: int = 3,
             n_best: int = 1, length_penalty: float = 1.0, max_length: int | None = None, reference: bool = False,
             batch_size: int = 128) -> list[list[decoding.Hypothesis]]:
    """uint8 [N, H, W, C] images -> per image up to n_best (tokens, score), best first."""
    device = torch.device(device)
    was = model.training
    model.eval()
    normalise = Normalise(data, device)
    step = (recompute_step if reference else cached_step)(model, device)
    out: list[list[decoding.Hypothesis]] = []
    for i in range(0, len(images), batch_size):
        x = normalise(torch.from_numpy(images[i:i + batch_size]).to(device))
        static, cache = encode(model, x)
        out += decoding.search(step, static, cache, max_length=np.full(len(x), max_length or data.max_length),
                               beam_size=beam_size, n_best=n_best, length_penalty=length_penalty)
    model.train(was)
    return out


@torch.no_grad()
def pooled_features(model: Captioner, data: Any, images: np.ndarray, device: torch.device | str,
                    batch_size: int = 256) -> np.ndarray:
    """[N, D] mean-pooled encoder features, L2-normalised (the nearest-neighbour baseline's space)."""
    device = torch.device(device)
    was = model.training
    model.eval()
    normalise, out = Normalise(data, device), []
    for i in range(0, len(images), batch_size):
        f = model.encoder(normalise(torch.from_numpy(images[i:i + batch_size]).to(device))).float().mean((2, 3))
        out.append(F.normalize(f, dim=1).cpu().numpy())
    model.train(was)
    return np.concatenate(out) if out else np.zeros((0, model.encoder.dim), np.float32)
