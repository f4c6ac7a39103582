"""BLEU-1..4 and CIDEr of generated captions against references: pycocoevalcap's Bleu and Cider scorers,
run offline (no Java PTB tokenizer): every text is lower-cased with its punctuation stripped first
(data.normalise), then split on whitespace by the scorers themselves."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from models.captioning.data import normalise


def caption_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Corpus BLEU-1..4 ('closest' reference length, as the COCO evaluation) and CIDEr (CIDEr-D's
    document frequencies are the references of this corpus). An empty hypothesis scores 0."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if not hypotheses:
        return {"bleu_1": 0.0, "bleu_2": 0.0, "bleu_3": 0.0, "bleu_4": 0.0, "cider": 0.0}
    gts = {i: [normalise(r) for r in refs] or [""] for i, refs in enumerate(references)}
    res = {i: [normalise(h)] for i, h in enumerate(hypotheses)}
    with contextlib.redirect_stdout(io.StringIO()):  # the scorers print their statistics
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        cider, _ = Cider().compute_score(gts, res)
    return {"bleu_1": float(bleu[0]), "bleu_2": float(bleu[1]), "bleu_3": float(bleu[2]),
            "bleu_4": float(bleu[3]), "cider": float(cider)}
