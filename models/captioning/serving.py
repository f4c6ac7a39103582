"""Captioning serving (numpy and tokenizers only; no torch): an image in, {"caption", "score"} out.

The version's model.onnx is the image encoder and decoder.onnx one decoder step; make_runner joins them
with the shared beam search (models.common.decoding.OnnxSeq2Seq), which the batcher calls with stacked
rows of preprocess()'s feeds. Parameters: beam_size (1..16, default the version's metadata.decoding
beam_size, else 3), n_best (1..beam_size, default 1; above 1 the response adds "n_best": [{"caption",
"score"}, ...]), length_penalty (0..10, GNMT's alpha, default the version's metadata.decoding
length_penalty, else 1.0), max_length (1..the version's max_length, default that). The score is the hypothesis'
length-normalised log-probability (higher is better, <= 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.classification.serving import image_preprocessing, image_tensor
from models.common import decoding, text
from models.common.errors import InputError
from models.common.images import DEFAULT_MAX_PIXELS, decode_input

TOKENIZER_FILE = "target.tokenizer.json"
DECODER_FILE = "decoder.onnx"
DEFAULT_BEAM = 3
PARAMS = ("beam_size", "n_best", "length_penalty", "max_length")


@dataclass(frozen=True)
class Spec:
    size: tuple[int, int]
    channels: int
    mean: np.ndarray  # [C, 1, 1] float32
    std: np.ndarray
    max_length: int
    tokenizer: Any  # tokenizers.Tokenizer
    input_name: str = "image"
    max_pixels: int = DEFAULT_MAX_PIXELS
    default_beam: int = DEFAULT_BEAM
    default_length_penalty: float = 1.0


def make_spec(signature: dict[str, Any], metadata: dict[str, Any], max_pixels: int = DEFAULT_MAX_PIXELS,
              folder: Path | None = None) -> Spec:
    inputs = signature.get("inputs") or []
    if len(inputs) != 1 or len(inputs[0].get("shape") or []) != 4:
        raise ValueError("a captioning model takes one image input [N, C, H, W]; "
                         f"this one takes {[(i.get('name'), i.get('shape')) for i in inputs]}")
    if folder is None or not (Path(folder) / TOKENIZER_FILE).is_file() or not (Path(folder) / DECODER_FILE).is_file():
        raise ValueError(f"a captioning version needs {DECODER_FILE} and {TOKENIZER_FILE} beside model.onnx "
                         "(versions trained here have them)")
    size, channels, mean, std = image_preprocessing(inputs[0]["shape"], metadata)
    dec = metadata.get("decoding") or {}
    return Spec(size, channels, mean, std, int(metadata.get("max_length") or 30),
                text.load(Path(folder) / TOKENIZER_FILE), inputs[0]["name"], max_pixels,
                int(dec.get("beam_size", DEFAULT_BEAM)), float(dec.get("length_penalty", 1.0)))


def make_runner(encoder_session: Any, folder: Path, spec: Spec,
                open_session: Callable[[Path], Any]) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    return decoding.OnnxSeq2Seq(encoder_session, open_session(Path(folder) / DECODER_FILE),
                                default_max_length=spec.max_length)


def _int(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    v = params.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise InputError(f"parameters.{name}", f"must be an integer between {low} and {high} (got {v!r})")
    return v


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(PARAMS)
    if unknown:
        raise InputError("parameters", f"unknown option(s) {sorted(unknown)}; captioning takes {', '.join(PARAMS)}")
    out: dict[str, Any] = {}
    if "beam_size" in params:  # else the version's default, widened to n_best
        out["beam_size"] = _int(params, "beam_size", DEFAULT_BEAM, 1, decoding.MAX_BEAM)
    out["n_best"] = _int(params, "n_best", 1, 1, out.get("beam_size", decoding.MAX_BEAM))
    if "length_penalty" in params:  # else the version's default
        lp = params["length_penalty"]
        if isinstance(lp, bool) or not isinstance(lp, (int, float)) or not 0 <= lp <= 10 or lp != lp:
            raise InputError("parameters.length_penalty", f"must be a number between 0 and 10 (got {lp!r})")
        out["length_penalty"] = float(lp)
    if "max_length" in params:
        out["max_length"] = _int(params, "max_length", 1, 1, 1000)
    return out


def decode(item: Any, index: int, spec: Spec) -> np.ndarray:
    return decode_input(item, index, "L" if spec.channels == 1 else "RGB", spec.max_pixels)


def _image(img: np.ndarray, spec: Spec) -> np.ndarray:
    return image_tensor(img, spec.size, spec.mean, spec.std)


def _options(params: dict[str, Any], spec: Spec, rows: int = 1) -> dict[str, np.ndarray]:
    max_length = params.get("max_length", spec.max_length)
    if max_length > spec.max_length:
        raise InputError("parameters.max_length", f"must be at most {spec.max_length}, the longest caption this "
                         f"version was trained to write (got {max_length})")
    n_best = params.get("n_best", 1)
    return {"beam_size": np.full(rows, params.get("beam_size", max(spec.default_beam, n_best)), np.int64),
            "n_best": np.full(rows, n_best, np.int64),
            "max_length": np.full(rows, max_length, np.int64),
            "length_penalty": np.full(rows, params.get("length_penalty", spec.default_length_penalty), np.float32)}


def preprocess(item: Any, index: int, params: dict[str, Any], spec: Spec) -> dict[str, np.ndarray]:
    """One input -> {"image": float32 [1, C, H, W], "beam_size", "n_best", "max_length": int64 [1],
    "length_penalty": float32 [1]}."""
    return {spec.input_name: _image(decode(item, index, spec), spec), **_options(params, spec)}


def postprocess(row: dict[str, np.ndarray], params: dict[str, Any], spec: Spec) -> dict[str, Any]:
    hyps = decoding.unpack(row)
    best = [{"caption": text.decode(spec.tokenizer, t), "score": s} for t, s in hyps]
    if not best:
        best = [{"caption": "", "score": float("-inf")}]
    out: dict[str, Any] = dict(best[0])
    if params.get("n_best", 1) > 1:
        out["n_best"] = best[:params["n_best"]]
    return out


def warmup_feeds(spec: Spec, rows: int) -> dict[str, np.ndarray]:
    """A mid-grey image per row (normalised like a real one), greedy, a few words at most."""
    grey = np.full((rows, spec.size[0], spec.size[1]) + ((spec.channels,) if spec.channels == 3 else ()), 128,
                   np.uint8)
    image = np.concatenate([_image(g, spec) for g in grey]) if rows else np.zeros((0, spec.channels, *spec.size),
                                                                                 np.float32)
    return {spec.input_name: image, **_options({"beam_size": 1, "max_length": min(4, spec.max_length)}, spec, rows)}
