"""The translation family's ONNX graphs and their parity check (torch; workers and tests only).

    model.onnx    encoder:      src int64 [batch, src_len] -> src_bias [batch, src_len] and
                                transformer: cross_k, cross_v [batch, layers, heads, src_len, head_dim]
                                lstm: memory [batch, src_len, d], past_h, past_c [batch, layers, d]
    decoder.onnx  decoder step: token int64 [batch], step int64 [1], the static encoder outputs and
                                past_* -> log_probs float32 [batch, vocab], present_* (the cache after
                                the step; transformer keys/values [batch, layers, heads, past_len + 1, head_dim])

Decoding (models.common.decoding) runs the same search over these graphs (OnnxSeq2Seq) and over the
PyTorch module; check_parity holds them to the same tokens and scores within 1e-3, greedy and beam 4.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.common import decoding, decoding_parity
from models.common.errors import ParityError  # noqa: F401  (what check_parity raises, as export.ParityError)
from models.translation.evaluation import default_max_length, pad_batch
from models.translation.networks import LSTMSeq2Seq

OPSET = 17


def names(model: nn.Module) -> tuple[list[str], list[str]]:
    """(static names, cache names) of a network, in graph order."""
    if isinstance(model, LSTMSeq2Seq):
        return ["memory", "src_bias"], ["past_h", "past_c"]
    return ["src_bias", "cross_k", "cross_v"], ["past_k", "past_v"]


class _Encoder(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.static, self.cache = names(model)

    def forward(self, src: torch.Tensor):
        static, cache = self.model.encode(src)
        return tuple(static[n] for n in self.static) + tuple(cache[n] for n in self.cache if n in cache)


class _Step(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.static, self.cache = names(model)

    def forward(self, token: torch.Tensor, step: torch.Tensor, *tensors: torch.Tensor):
        ns = len(self.static)
        static = dict(zip(self.static, tensors[:ns], strict=True))
        cache = dict(zip(self.cache, tensors[ns:], strict=True))
        log_probs, cache = self.model.step(token, step, static, cache)
        return (log_probs,) + tuple(cache[n] for n in self.cache)


def export(model: nn.Module, folder: Path) -> None:
    """Writes folder/model.onnx (encoder) and folder/decoder.onnx (decoder step)."""
    model = model.to("cpu").eval()
    static_names, cache_names = names(model)
    src = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]], dtype=torch.int64)
    enc = _Encoder(model)
    with torch.no_grad():
        enc_out = enc(src)
    enc_names = static_names + [n for n in cache_names if isinstance(model, LSTMSeq2Seq)]
    axes: dict[str, dict[int, str]] = {"src": {0: "batch", 1: "src_len"}, "src_bias": {0: "batch", 1: "src_len"},
                                       "memory": {0: "batch", 1: "src_len"},
                                       "cross_k": {0: "batch", 3: "src_len"}, "cross_v": {0: "batch", 3: "src_len"},
                                       "past_h": {0: "batch"}, "past_c": {0: "batch"}}
    _export(enc, (src,), folder / "model.onnx", ["src"], enc_names, {n: axes[n] for n in ["src", *enc_names]})

    static = dict(zip(static_names, enc_out[:len(static_names)], strict=True))
    if isinstance(model, LSTMSeq2Seq):
        cache = dict(zip(cache_names, enc_out[len(static_names):], strict=True))
        cache_axes = {n: {0: "batch"} for n in cache_names}
        present_axes = {f"present_{n[5:]}": {0: "batch"} for n in cache_names}
    else:  # a cache of 2 earlier positions, so past_len is traced as a dimension
        cache = {n: torch.randn(2, model.n_layers, model.heads, 2, model.d // model.heads) for n in cache_names}
        cache_axes = {n: {0: "batch", 3: "past_len"} for n in cache_names}
        present_axes = {f"present_{n[5:]}": {0: "batch", 3: "present_len"} for n in cache_names}
    token, step = torch.tensor([5, 6], dtype=torch.int64), torch.tensor([2], dtype=torch.int64)
    inputs = ["token", "step", *static_names, *cache_names]
    outputs = ["log_probs", *present_axes]
    dyn = {"token": {0: "batch"}, "log_probs": {0: "batch"}, **{n: axes[n] for n in static_names}, **cache_axes,
           **present_axes}
    _export(_Step(model), (token, step, *static.values(), *cache.values()), folder / "decoder.onnx", inputs, outputs,
            dyn)


def _export(module: nn.Module, example: tuple, path: Path, inputs: list[str], outputs: list[str],
            axes: dict[str, dict[int, str]]) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(module, example, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)


# -- decoding with PyTorch --------------------------------------------------------------------------

class TorchSeq2Seq:
    """decoding.search over the PyTorch module. cached=True runs the same cached step as the ONNX
    decoder (fast: evaluation); cached=False recomputes the whole prefix at every step (the reference
    of the parity check, so that it checks the ONNX cache too)."""

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu", cached: bool = True):
        self.model, self.device, self.cached = model, torch.device(device), cached
        self.static_names, self.cache_names = names(model)
        self._cache0: dict[str, np.ndarray] = {}

    def _t(self, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in arrays.items()}

    @torch.no_grad()
    def encode(self, src: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        static, cache = self.model.encode(torch.from_numpy(src).to(self.device))
        if not cache:
            cache = self.model.empty_cache(src.shape[0], self.device)
        static = {k: v.float().cpu().numpy() for k, v in static.items()}
        cache = {k: v.float().cpu().numpy() for k, v in cache.items()}
        if not self.cached:  # the reference carries the encoder's first cache (LSTM state), never updated
            static = {**static, **{f"init_{k}": v for k, v in cache.items()}}
            cache = {}
        return static, cache

    @torch.no_grad()
    def step(self, prefix: np.ndarray, static: dict[str, np.ndarray], cache: dict[str, np.ndarray]):
        st = self._t(static)
        if self.cached:
            token = torch.from_numpy(np.ascontiguousarray(prefix[:, -1])).to(self.device)
            step = torch.tensor([prefix.shape[1] - 1], dtype=torch.int64, device=self.device)
            lp, new = self.model.step(token, step, st, self._t(cache))
            return lp.float().cpu().numpy(), {k: v.float().cpu().numpy() for k, v in new.items()}
        cache0 = {k[5:]: v for k, v in st.items() if k.startswith("init_")}
        lp = self.model.full(torch.from_numpy(prefix).to(self.device), st, cache0)
        return lp.float().cpu().numpy(), cache

    def decode(self, src: np.ndarray, max_length: np.ndarray, beam_size: int = 1, n_best: int = 1,
               length_penalty: float = 1.0) -> list[list[decoding.Hypothesis]]:
        was = self.model.training
        self.model.eval()
        try:
            static, cache = self.encode(src)
            axes = {n: 0 for n in cache}
            return decoding.search(self.step, static, cache, batch_axes=axes, max_length=max_length,
                                   beam_size=beam_size, n_best=n_best, length_penalty=length_penalty)
        finally:
            self.model.train(was)


def check_parity(model: nn.Module, folder: Path, sources: list[list[int]], length_penalty: float = 0.6,
                 max_length_cap: int | None = None) -> dict[str, Any]:
    """Decodes `sources` (token ids ending with EOS) with the exported graphs and with PyTorch
    (recomputing the prefix), greedy and beam 4 (models/common/decoding_parity.py)."""
    model = model.to("cpu").eval()
    src = pad_batch(sources)
    max_length = default_max_length(src)
    if max_length_cap is not None:
        max_length = np.minimum(max_length, max_length_cap)
    ref = TorchSeq2Seq(model, "cpu", cached=False)
    return decoding_parity.check(decoding_parity.onnx_decoder(folder), {"src": src},
                                 lambda beam, n_best: ref.decode(src, max_length, beam, n_best, length_penalty),
                                 max_length, length_penalty=length_penalty, what="held sources")
