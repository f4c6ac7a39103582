"""Translation serving (numpy + tokenizers only; no torch).

An input is {"text": "Ein Hund läuft."} (or the bare string); a request may hold many. The text is
tokenised with the version's source.tokenizer.json, EOS appended, and decoded by beam search over the
encoder (model.onnx) and the cached decoder step (decoder.onnx) through models.common.decoding; the
batcher pads `src` of concurrent requests with PAD so they share a batch. Out comes
{"translation", "score"} (score: the GNMT-normalised log-probability), and with n_best > 1 also
"n_best": [{"translation", "score"}, ...] best first.

Parameters: beam_size (1..16; default the version's evaluation beam, metadata.decoding), n_best
(1..beam_size), length_penalty (>= 0, GNMT alpha), max_length (target tokens, 1..metadata.max_length;
default 2 x source tokens + 10). Empty text is a 422; text longer than the version's limit
(metadata.max_source_tokens subword tokens, or MAX_CHARS characters) is a 413 naming the limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.common import decoding, text
from models.common.errors import SHAPE, InputError, InputTooLarge
from models.translation.schemas import MAX_CHARS

OPTIONS = ("beam_size", "n_best", "length_penalty", "max_length")


@dataclass(frozen=True)
class Spec:
    src_tok: Any  # tokenizers.Tokenizer
    tgt_tok: Any
    max_source_tokens: int
    max_length: int
    beam_size: int
    length_penalty: float
    source_lang: str | None = None
    target_lang: str | None = None


def make_spec(signature: dict[str, Any], metadata: dict[str, Any], max_pixels: int = 0,
              folder: Path | None = None) -> Spec:
    names = [i["name"] for i in signature.get("inputs", [])]
    if names != ["src"]:
        raise ValueError(f"a translation model takes one input 'src' [N, S] of token ids; this one takes {names}")
    if folder is None:
        raise ValueError("the version's folder (with its tokenizer files) is needed to serve translations")
    toks = metadata.get("tokenizers") or {}
    paths = [Path(folder) / toks.get(side, f"{side}.tokenizer.json") for side in ("source", "target")]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"the version has no {', '.join(missing)} beside its ONNX files")
    if not (Path(folder) / "decoder.onnx").is_file():
        raise ValueError("the version has no decoder.onnx (the decoder-step graph) beside model.onnx")
    dec = metadata.get("decoding") or {}
    return Spec(text.load(paths[0]), text.load(paths[1]), int(metadata.get("max_source_tokens", 255)),
                int(metadata.get("max_length", 512)), int(dec.get("beam_size", 4)),
                float(dec.get("length_penalty", 0.6)), metadata.get("source_lang"), metadata.get("target_lang"))


def make_runner(encoder_session: Any, folder: Path, spec: Spec,
                open_session: Callable[[Path], Any]) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    decoder = open_session(Path(folder) / "decoder.onnx")
    return decoding.OnnxSeq2Seq(encoder_session, decoder, default_max_length=default_max_length,
                                bos=text.BOS, eos=text.EOS)


def default_max_length(feeds: dict[str, np.ndarray]) -> np.ndarray:
    return 2 * (feeds["src"] != text.PAD).sum(1).astype(np.int64) + 10


def batch_padding(spec: Spec) -> dict[str, tuple[int, object]]:
    return {"src": (1, text.PAD)}


def _int(params: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    v = params.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise InputError(f"parameters.{name}", f"must be an integer between {lo} and {hi} (got {v!r:.40})")
    return v


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(OPTIONS)
    if unknown:
        raise InputError("parameters", f"unknown option(s) {sorted(unknown)}; translation takes "
                         f"{', '.join(OPTIONS)}")
    beam = _int(params, "beam_size", 1, decoding.MAX_BEAM)
    n_best = _int(params, "n_best", 1, beam or decoding.MAX_BEAM)
    max_length = _int(params, "max_length", 1, 100_000)
    lp = params.get("length_penalty")
    if lp is not None and (isinstance(lp, bool) or not isinstance(lp, (int, float)) or not math.isfinite(lp)
                           or lp < 0):
        raise InputError("parameters.length_penalty", f"must be a number >= 0 (got {lp!r:.40})")
    return {"beam_size": beam, "n_best": n_best, "length_penalty": None if lp is None else float(lp),
            "max_length": max_length}


def _text(item: Any, index: int) -> str:
    field = f"inputs[{index}].text"
    was_dict = isinstance(item, dict)
    if was_dict:
        extra = set(item) - {"text"}
        if extra:
            raise InputError(f"inputs[{index}].{sorted(extra)[0]}",
                             'unknown field; a translation input is {"text": "..."}', SHAPE)
        item = item.get("text")
        if item is None:
            raise InputError(field, "missing: a translation input is {\"text\": \"...\"}", SHAPE)
    if not isinstance(item, str):
        raise InputError(field if was_dict else f"inputs[{index}]", 'expected {"text": "..."} or a string', SHAPE)
    if not item.strip():
        raise InputError(field, "is empty; give a sentence to translate")
    if len(item) > MAX_CHARS:
        raise InputTooLarge(field, f"is {len(item)} characters, over the limit of {MAX_CHARS}")
    return item


def preprocess(item: Any, index: int, params: dict[str, Any], spec: Spec) -> dict[str, np.ndarray]:
    """One text -> {"src": int64 [1, S] (EOS last), and the row's decoding options}."""
    ids = text.encode(spec.src_tok, _text(item, index))
    if not ids:
        raise InputError(f"inputs[{index}].text", "holds no tokens this model knows; give a sentence to translate")
    if len(ids) > spec.max_source_tokens:
        raise InputTooLarge(f"inputs[{index}].text", f"is {len(ids)} subword tokens, over this model's limit of "
                            f"{spec.max_source_tokens} tokens; split it into sentences")
    beam = params.get("beam_size") or max(spec.beam_size, params.get("n_best") or 1)
    n_best = params.get("n_best") or 1
    if n_best > beam:
        raise InputError("parameters.n_best", f"must be at most beam_size ({beam})")
    max_length = params.get("max_length") or 2 * (len(ids) + 1) + 10
    if max_length > spec.max_length:
        raise InputError("parameters.max_length", f"must be at most {spec.max_length} for this model")
    lp = spec.length_penalty if params.get("length_penalty") is None else params["length_penalty"]
    return {"src": np.asarray([ids + [text.EOS]], np.int64), "beam_size": np.asarray([beam], np.int64),
            "n_best": np.asarray([n_best], np.int64), "max_length": np.asarray([max_length], np.int64),
            "length_penalty": np.asarray([lp], np.float32)}


def postprocess(outputs: dict[str, np.ndarray], params: dict[str, Any], spec: Spec) -> dict[str, Any]:
    hyps = decoding.unpack(outputs)
    n_best = params.get("n_best") or 1
    found = [{"translation": text.decode(spec.tgt_tok, toks), "score": float(score)} for toks, score in hyps[:n_best]]
    best = found[0] if found else {"translation": "", "score": float("-inf")}
    out: dict[str, Any] = dict(best)
    if n_best > 1:
        out["n_best"] = found
    return out


def warmup_feeds(spec: Spec, rows: int) -> dict[str, np.ndarray]:
    """A few real tokens per row (ids 4.. are ordinary subwords), greedy, short."""
    hi = max(spec.src_tok.get_vocab_size() - 1, text.UNK)
    ids = [min(4 + k, hi) for k in range(4)] + [text.EOS]
    return {"src": np.tile(np.asarray([ids], np.int64), (rows, 1)), "beam_size": np.ones(rows, np.int64),
            "n_best": np.ones(rows, np.int64), "max_length": np.full(rows, 8, np.int64),
            "length_penalty": np.full(rows, 0.6, np.float32)}
