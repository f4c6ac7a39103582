"""Corpus BLEU of a translation model's beam search on the validation split (issue 20; numpy, tokenizers,
sacrebleu and ONNX Runtime only). One search-and-score path, whatever decodes: training.evaluate hands
in the cached PyTorch step (export.TorchSeq2Seq), evaluate_onnx the version's graphs as serving runs them
(serving.make_runner's decoding.OnnxSeq2Seq)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.common import decoding, onnx_eval, text
from models.translation import serving

EVAL_BATCH = 64
# (src [B, S] EOS-terminated and PAD-padded, max_length [B], beam size, length penalty) -> hypotheses per row
Decode = Callable[[np.ndarray, np.ndarray, int, float], list[list[decoding.Hypothesis]]]


def pad_batch(rows: list[list[int]]) -> np.ndarray:
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width), np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def default_max_length(src: np.ndarray) -> np.ndarray:
    """2 x the source length (its tokens with EOS, padding not counted) + 10, as serving uses."""
    return serving.default_max_length({"src": src})


def translate(decode: Decode, tgt_tok: Any, sources: list[list[int]], beam_size: int = 4,
              length_penalty: float = 0.6, batch_size: int = EVAL_BATCH) -> list[str]:
    """Target text of each source (ids without EOS), decoded in batches of similar lengths."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    texts: dict[int, str] = {}
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        src = pad_batch([sources[i] + [text.EOS] for i in idx])
        hyps = decode(src, default_max_length(src), beam_size, length_penalty)
        for i, h in zip(idx, hyps, strict=True):
            texts[i] = text.decode(tgt_tok, h[0][0]) if h else ""
    return [texts[i] for i in range(len(sources))]


def bleu(hypotheses: list[str], references: list[str], lowercase: bool = False) -> tuple[float, str]:
    import sacrebleu

    metric = sacrebleu.BLEU(lowercase=lowercase)  # lowercase: a model trained with lowercase=True
    score = metric.corpus_score(hypotheses, [references])
    return float(score.score), str(metric.get_signature())


def validation_bleu(data: Any, decode: Decode, beam_size: int | None = None, length_penalty: float | None = None,
                    limit: int | None = None) -> tuple[float, str, list[str]]:
    """Corpus sacreBLEU (0-100; default 13a tokenisation, mixed case) of beam search (the run's eval beam and
    length penalty unless given) on the first `limit` validation pairs (all by default), against their one
    reference each -> (score, sacreBLEU's signature, the translations)."""
    cfg = data.info.get("config", {})
    beam = beam_size or cfg.get("eval_beam_size", 4)
    lp = cfg.get("length_penalty", 0.6) if length_penalty is None else length_penalty
    n = onnx_eval.capped(len(data.val_src), limit)
    hyps = translate(decode, data.tgt_tok, data.val_src[:n], beam, lp)
    score, signature = bleu(hyps, data.val_ref_text[:n], bool(cfg.get("lowercase")))
    return score, signature, hyps


def evaluate_onnx(data: Any, folder: Path, limit: int | None = None) -> dict[str, float]:
    """-> {"val_bleu"} of model.onnx + decoder.onnx, searched as served."""
    folder = Path(folder)
    # serving.make_runner reads no spec: the tokenizers it would hold are data's
    runner = serving.make_runner(onnx_eval.session(folder / "model.onnx"), folder, None, onnx_eval.session)

    def decode(src: np.ndarray, max_length: np.ndarray, beam: int, lp: float) -> list[list[decoding.Hypothesis]]:
        return runner.decode({"src": src}, max_length, decoding.Options(beam, 1, lp))

    return {"val_bleu": validation_bleu(data, decode, limit=limit)[0]}
