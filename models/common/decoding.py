"""Greedy and beam-search decoding over decoder steps, shared by the translation and captioning families.

Written once, in numpy, against a step function, so that the very same search runs three ways:
over ONNX Runtime sessions when serving (OnnxSeq2Seq), over the PyTorch model when a run checks its
export (parity) and when it scores its validation split (BLEU, CIDEr).

    step(prefix, static, cache) -> (log_probs [B, V], cache)

`prefix` holds every token so far (BOS first), so a reference step may recompute the whole prefix; the
ONNX step feeds only the last token and carries keys/values (or LSTM state) in `cache`. `static`
holds what the encoder computed (memory, its mask, image features): fixed per source row.

ONNX layout (see models/translation and models/captioning for the graphs):
    encoder:  the family's inputs -> outputs; an output named past_<x> is the first value of the
              decoder's cache entry past_<x>; every other output is static and feeds each step by name.
    decoder:  token int64 [batch] (+ optional step int64 [1]), the static inputs it names, past_<x>
              -> log_probs float32 [batch, V] and present_<x> for each past_<x>. A past_<x> the encoder
              does not give starts as zeros: the dim named "batch" sized to the batch, any other
              dynamic dim 0 (an empty self-attention cache). Caches are reordered along their "batch" dim.

Scores are GNMT's: the sum of token log-probabilities (EOS included) divided by
lp = ((5 + length) / 6) ** length_penalty, length counting EOS; length_penalty 0 ranks by raw log-probability.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.common.text import BOS, EOS

Arrays = dict[str, np.ndarray]
Step = Callable[[np.ndarray, Arrays, Arrays], tuple[np.ndarray, Arrays]]
Hypothesis = tuple[list[int], float]
MAX_BEAM = 16


@dataclass(frozen=True)
class Options:
    beam_size: int = 1
    n_best: int = 1
    length_penalty: float = 1.0


def length_norm(length: int | np.ndarray, alpha: float) -> np.ndarray | float:
    return ((5.0 + length) / 6.0) ** alpha


def search(step: Step, static: Arrays, cache: Arrays, *, batch_axes: dict[str, int] | None = None,
           bos: int = BOS, eos: int = EOS, max_length: np.ndarray | list[int], beam_size: int = 1,
           n_best: int = 1, length_penalty: float = 1.0) -> list[list[Hypothesis]]:
    """Beam search (greedy at beam_size 1) for every row of `static`/`cache`; per row, up to n_best
    hypotheses best first. A hypothesis ends at EOS or at the row's max_length tokens (EOS not counted)."""
    batch_axes = batch_axes or {}
    max_length = np.maximum(np.asarray(max_length, dtype=np.int64).reshape(-1), 1)
    n, k = len(max_length), int(beam_size)
    n_best = max(1, min(int(n_best), k))
    alpha = float(length_penalty)
    slots = np.repeat(np.arange(n), k)
    static = {name: v[slots] for name, v in static.items()}
    cache = {name: np.take(v, slots, axis=batch_axes.get(name, 0)) for name, v in cache.items()}
    prefix = np.full((n * k, 1), bos, dtype=np.int64)
    scores = np.full((n, k), -np.inf)
    scores[:, 0] = 0.0  # the k copies of a row are one beam until the first step tells them apart
    finished: list[list[tuple[float, float, list[int]]]] = [[] for _ in range(n)]  # (normalised, raw, tokens)
    active = np.arange(n)

    while active.size:
        log_probs, cache = step(prefix, static, cache)
        a, length = active.size, prefix.shape[1]  # every candidate below holds `length` tokens after BOS
        vocab = log_probs.shape[-1]
        total = scores[:, :, None] + log_probs.astype(np.float64).reshape(a, k, vocab)
        flat = total.reshape(a, k * vocab)
        take = min(2 * k, flat.shape[1])
        cand = np.argpartition(-flat, take - 1, axis=1)[:, :take]
        order = np.argsort(-np.take_along_axis(flat, cand, axis=1), axis=1, kind="stable")
        cand = np.take_along_axis(cand, order, axis=1)

        parents = np.zeros((a, k), dtype=np.int64)
        tokens = np.full((a, k), eos, dtype=np.int64)
        new_scores = np.full((a, k), -np.inf)
        keep = np.ones(a, dtype=bool)
        for i, row in enumerate(active):
            live = 0
            for c in cand[i]:
                raw = flat[i, c]
                if not np.isfinite(raw):
                    break
                beam, token = divmod(int(c), vocab)
                if token == eos:
                    hyp = prefix[i * k + beam, 1:].tolist()
                    finished[row].append((raw / length_norm(length, alpha), raw, hyp))
                    continue
                parents[i, live], tokens[i, live], new_scores[i, live] = beam, token, raw
                live += 1
                if live == k:
                    break
            done = len(finished[row]) >= k or live == 0
            if not done and length >= max_length[row]:
                # Out of room: the live beams end here, as they are (their last token is kept).
                for j in range(live):
                    hyp = prefix[i * k + parents[i, j], 1:].tolist() + [int(tokens[i, j])]
                    finished[row].append((new_scores[i, j] / length_norm(length, alpha), new_scores[i, j], hyp))
                done = True
            if not done and len(finished[row]) >= n_best:
                # Raw scores only fall, and lp only grows: no live beam can beat the n-th best any more.
                nth = sorted((f[0] for f in finished[row]), reverse=True)[n_best - 1]
                best_possible = new_scores[i, :live].max() / length_norm(int(max_length[row]), alpha)
                done = best_possible <= nth
            keep[i] = not done

        idx = (np.arange(a)[:, None] * k + parents).reshape(-1)
        prefix = np.concatenate([prefix[idx], tokens.reshape(-1, 1)], axis=1)
        cache = {name: np.take(v, idx, axis=batch_axes.get(name, 0)) for name, v in cache.items()}
        scores = new_scores
        if not keep.all():
            rows = np.flatnonzero(keep)
            sel = (rows[:, None] * k + np.arange(k)).reshape(-1)
            prefix, scores, active = prefix[sel], scores[rows], active[rows]
            static = {name: v[sel] for name, v in static.items()}
            cache = {name: np.take(v, sel, axis=batch_axes.get(name, 0)) for name, v in cache.items()}

    out = []
    for hyps in finished:
        hyps.sort(key=lambda h: -h[0])
        out.append([(h[2], float(h[0])) for h in hyps[:n_best]])
    return out


def pack(results: list[list[Hypothesis]], n_best: int | None = None) -> Arrays:
    """Hypotheses per row -> {"tokens": int64 [N, n_best, L] padded with -1, "scores": float32 [N, n_best]
    padded with -inf}: the tensors a batch returns, split back into rows by the batcher."""
    nb = n_best or max((len(r) for r in results), default=1)
    width = max((len(t) for r in results for t, _ in r), default=0)
    tokens = np.full((len(results), nb, max(width, 1)), -1, dtype=np.int64)
    scores = np.full((len(results), nb), -np.inf, dtype=np.float32)
    for i, hyps in enumerate(results):
        for j, (toks, score) in enumerate(hyps[:nb]):
            tokens[i, j, :len(toks)] = toks
            scores[i, j] = score
    return {"tokens": tokens, "scores": scores}


def unpack(row: Arrays) -> list[tuple[list[int], float]]:
    """One row of pack()'s tensors -> [(tokens, score)] best first, padding dropped."""
    tokens, scores = row["tokens"], row["scores"]
    tokens = tokens.reshape(-1, tokens.shape[-1])
    return [([int(t) for t in toks if t >= 0], float(s)) for toks, s in zip(tokens, scores.reshape(-1), strict=True)
            if np.isfinite(s)]


class OnnxSeq2Seq:
    """An encoder session and a decoder-step session as one batch function for the platform's batcher:
    feeds (the encoder's inputs, plus per-row option feeds beam_size / n_best / max_length /
    length_penalty) -> pack()'s tensors. Rows that ask for the same options are searched together."""

    def __init__(self, encoder: Any, decoder: Any, *, default_max_length: Callable[[Arrays], np.ndarray] | int = 64,
                 bos: int = BOS, eos: int = EOS, static_device: str | None = None):
        self.encoder, self.decoder, self.bos, self.eos = encoder, decoder, bos, eos
        # On a GPU the static inputs (a transformer's cross-attention keys/values: as big as the whole
        # self-attention cache at full length) would be copied to the device for every step; kept there
        # instead, they are copied once per beam search and again only when finished rows drop out.
        self.static_device = static_device if static_device is not None else _device_of(decoder)
        self.default_max_length = default_max_length
        self.encoder_inputs = [i.name for i in encoder.get_inputs()]
        self.encoder_outputs = [o.name for o in encoder.get_outputs()]
        dec_inputs = {i.name: i for i in decoder.get_inputs()}
        if "token" not in dec_inputs or "log_probs" not in [o.name for o in decoder.get_outputs()]:
            raise ValueError("the decoder-step graph must take 'token' and give 'log_probs'")
        self.static_names = [n for n in self.encoder_outputs if not n.startswith("past_") and n in dec_inputs]
        self.cache_names = [n for n in dec_inputs if n.startswith("past_")]
        self.has_step = "step" in dec_inputs
        self.batch_axes = {n: _batch_axis(dec_inputs[n].shape) for n in self.cache_names}
        self.empty_cache = {n: dec_inputs[n] for n in self.cache_names if n not in self.encoder_outputs}
        missing = [n for n in dec_inputs if n not in ("token", "step") and not n.startswith("past_")
                   and n not in self.encoder_outputs]
        if missing:
            raise ValueError(f"the decoder-step graph takes {missing}, which the encoder does not give")
        self.decoder_outputs = ["log_probs"] + [f"present_{n[5:]}" for n in self.cache_names]

    def encode(self, feeds: Arrays) -> tuple[Arrays, Arrays]:
        outs = dict(zip(self.encoder_outputs,
                        self.encoder.run(self.encoder_outputs, {n: feeds[n] for n in self.encoder_inputs}),
                        strict=True))
        batch = next(iter(feeds[n] for n in self.encoder_inputs)).shape[0]
        static = {n: outs[n] for n in self.static_names}
        cache = {n: outs[n] for n in self.cache_names if n in outs}
        for n, meta in self.empty_cache.items():
            shape = [batch if d == "batch" else (d if isinstance(d, int) else 0) for d in meta.shape]
            cache[n] = np.zeros(shape, dtype=_NUMPY.get(meta.type, np.float32))
        return static, cache

    def step(self, prefix: np.ndarray, static: Arrays, cache: Arrays) -> tuple[np.ndarray, Arrays]:
        feeds = {"token": np.ascontiguousarray(prefix[:, -1]), **static, **cache}
        if self.has_step:
            feeds["step"] = np.array([prefix.shape[1] - 1], dtype=np.int64)
        outs = self.decoder.run(self.decoder_outputs, feeds)
        return outs[0], dict(zip(self.cache_names, outs[1:], strict=True))

    def device_step(self) -> Step:
        """step() with the static inputs bound on `static_device` (one search's state: make one per search)."""
        import onnxruntime as ort  # here: the reference searches (parity, BLEU) run with PyTorch alone

        device, device_id = (self.static_device.split(":") + ["0"])[:2]
        held: dict[str, tuple[np.ndarray, Any]] = {}  # name -> (the host array, its copy on the device)

        def step(prefix: np.ndarray, static: Arrays, cache: Arrays) -> tuple[np.ndarray, Arrays]:
            binding = self.decoder.io_binding()
            binding.bind_cpu_input("token", np.ascontiguousarray(prefix[:, -1]))
            if self.has_step:
                binding.bind_cpu_input("step", np.array([prefix.shape[1] - 1], dtype=np.int64))
            for name, value in static.items():
                if name not in held or held[name][0] is not value:  # new rows: search() dropped finished ones
                    on_device = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value), device, int(device_id))
                    held[name] = (value, on_device)
                binding.bind_ortvalue_input(name, held[name][1])
            for name, value in cache.items():
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
            for name in self.decoder_outputs:
                binding.bind_output(name, "cpu")
            self.decoder.run_with_iobinding(binding)
            outs = binding.copy_outputs_to_cpu()
            return outs[0], dict(zip(self.cache_names, outs[1:], strict=True))

        return step

    def decode(self, feeds: Arrays, max_length: np.ndarray, options: Options) -> list[list[Hypothesis]]:
        static, cache = self.encode(feeds)
        step = self.device_step() if self.static_device else self.step
        return search(step, static, cache, batch_axes=self.batch_axes, bos=self.bos, eos=self.eos,
                      max_length=max_length, beam_size=options.beam_size, n_best=options.n_best,
                      length_penalty=options.length_penalty)

    def __call__(self, feeds: Arrays) -> Arrays:
        n = feeds[self.encoder_inputs[0]].shape[0]
        if "max_length" in feeds:
            max_length = feeds["max_length"].reshape(-1).astype(np.int64)
        elif callable(self.default_max_length):
            max_length = np.broadcast_to(np.asarray(self.default_max_length(feeds), dtype=np.int64).reshape(-1), (n,))
        else:
            max_length = np.full(n, int(self.default_max_length), dtype=np.int64)
        per_row = [Options(int(_opt(feeds, "beam_size", i, 1)), int(_opt(feeds, "n_best", i, 1)),
                           float(_opt(feeds, "length_penalty", i, 1.0))) for i in range(n)]
        groups: dict[Options, list[int]] = {}
        for i, o in enumerate(per_row):
            groups.setdefault(o, []).append(i)
        results: list[list[Hypothesis]] = [[] for _ in range(n)]
        for options, rows in groups.items():
            idx = np.asarray(rows)
            sub = {name: feeds[name][idx] for name in self.encoder_inputs} if len(groups) > 1 else feeds
            for i, hyps in zip(rows, self.decode(sub, max_length[idx], options), strict=True):
                results[i] = hyps
        return pack(results, max(o.n_best for o in per_row))


def _opt(feeds: Arrays, name: str, row: int, default: float) -> float:
    v = feeds.get(name)
    return default if v is None else v.reshape(-1)[row]


def _device_of(session: Any) -> str | None:
    """'cuda:N' when the session runs on a CUDA device, else None (on the CPU the plain run() copies nothing)."""
    if session.get_providers()[0] != "CUDAExecutionProvider":
        return None
    options = session.get_provider_options().get("CUDAExecutionProvider", {})
    return f"cuda:{options.get('device_id', 0)}"


def _batch_axis(shape: list[Any]) -> int:
    return next((i for i, d in enumerate(shape) if d == "batch"), 0)


_NUMPY = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(float16)": np.float16,
          "tensor(double)": np.float64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}
