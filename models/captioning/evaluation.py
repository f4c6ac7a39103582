"""BLEU and CIDEr of a captioning model's beam search on the validation images (issue 20; numpy, tokenizers,
pycocoevalcap and ONNX Runtime only): training.evaluate scores PyTorch's hypotheses with `scores`,
evaluate_onnx those of the version's graphs run as serving runs them (serving.make_runner)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.captioning import serving
from models.captioning.metrics import caption_scores
from models.common import calibration, decoding, onnx_eval, text

BATCH = 128  # images searched together (as training's decode.generate)


def scores(data: Any, hyps: list[list[decoding.Hypothesis]]) -> dict[str, float]:
    """Each validation image's best hypothesis (the first len(hyps) images) as words -> bleu_1..4, cider
    against its references."""
    captions = [text.decode(data.tokenizer, h[0][0]) if h else "" for h in hyps]
    return caption_scores(captions, data.val.references[:len(hyps)])


def evaluate_onnx(data: Any, folder: Path, limit: int | None = None) -> dict[str, float]:
    """-> {"val_bleu_1".."val_bleu_4" (0-1, pycocoevalcap), "val_cider"} of model.onnx + decoder.onnx with
    the run's eval beam and length penalty, captions up to the run's max_length."""
    folder = Path(folder)
    encoder = onnx_eval.session(folder / "model.onnx")
    shape = [-1, data.channels, *data.size]
    spec = serving.make_spec({"inputs": [{"name": encoder.get_inputs()[0].name, "shape": shape}]},
                             {"preprocessing": {"size": list(data.size), "channels": data.channels, "mean": data.mean,
                                                "std": data.std}, "max_length": data.max_length}, folder=folder)
    runner = serving.make_runner(encoder, folder, spec, onnx_eval.session)
    options = decoding.Options(data.eval_beam_size, 1, data.length_penalty)
    n = onnx_eval.capped(len(data.val.images), limit)
    hyps: list[list[decoding.Hypothesis]] = []
    for i in range(0, n, BATCH):
        x = calibration.images(data.val.images[i:min(n, i + BATCH)], data.mean, data.std)
        hyps += runner.decode({spec.input_name: x}, np.full(len(x), spec.max_length, np.int64), options)
    return {f"val_{k}": v for k, v in scores(data, hyps).items()}
