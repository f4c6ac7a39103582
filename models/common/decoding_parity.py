"""The parity check of an encoder-decoder family's export (captioning, translation): held examples decoded
with the exported graphs in ONNX Runtime (decoding.OnnxSeq2Seq) and with a PyTorch reference that
recomputes the whole prefix at every step (so the graphs' cache is checked too), greedy and by beam
search. numpy and ONNX Runtime only: the family hands in the reference as a function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.common import decoding
from models.common.errors import ParityError

SCORE_TOL = 1e-3
# (beam size, n_best): greedy, and beam 4 with the runner-up compared too
BEAMS = ((1, 1), (4, 2))


def onnx_decoder(folder: Path, encoder: str = "model.onnx", decoder: str = "decoder.onnx") -> decoding.OnnxSeq2Seq:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    open_ = lambda name: ort.InferenceSession(str(Path(folder) / name), opts,  # noqa: E731
                                              providers=["CPUExecutionProvider"])
    return decoding.OnnxSeq2Seq(open_(encoder), open_(decoder))


def check(onnx: decoding.OnnxSeq2Seq, feeds: dict[str, np.ndarray],
          reference: Callable[[int, int], list[list[decoding.Hypothesis]]], max_length: np.ndarray, *,
          length_penalty: float, beams: Sequence[tuple[int, int]] = BEAMS, tolerance: float = SCORE_TOL,
          what: str = "held examples") -> dict[str, Any]:
    """reference(beam_size, n_best) -> PyTorch's hypotheses for the same examples. The tokens must agree
    and the scores be within `tolerance`; different tokens pass only as an equally scored alternative
    (two candidates whose scores tie to the last bits may come out in either order). Else ParityError.
    -> the report kept in the version's metadata."""
    import onnxruntime as ort

    worst, mismatches, ties = 0.0, [], 0
    for beam, n_best in beams:
        got = onnx.decode(feeds, max_length, decoding.Options(beam, n_best, length_penalty))
        want = reference(beam, n_best)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            diff = max((abs(a[1] - b[1]) for a, b in zip(g, w, strict=True)), default=0.0)
            if [t for t, _ in g] != [t for t, _ in w]:
                if diff > tolerance:
                    mismatches.append(f"beam {beam}, example {i}: ONNX {g[0][0][:12] if g else []} vs "
                                      f"PyTorch {w[0][0][:12] if w else []}")
                ties += 1
                continue
            worst = max(worst, diff)
    if mismatches or worst > tolerance:
        detail = "; ".join(mismatches[:3]) if mismatches else f"max score difference {worst:.3g} > {tolerance}"
        raise ParityError(f"ONNX Runtime and PyTorch decode {what} differently: {detail}")
    return {"examples": int(len(max_length)), "beams": [b for b, _ in beams], "max_score_diff": float(worst),
            "score_tolerance": tolerance, "equal_score_alternatives": ties,
            "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider"}
