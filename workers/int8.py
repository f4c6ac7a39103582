"""A version folder -> an int8 version folder with ONNX Runtime's quantisation tools, and what a version costs per
batch (issue 20). No database, no job: workers/quantise.py runs these for a quantisation job.

A folder holds model.onnx and, for a multi_file family, its other graphs (decoder.onnx) and files (tokenizers),
which are copied as they are. A family's calibration batches (models.contract.Family.calibration) are
{input name: array} for a one-graph family and {graph file: feeds} for a multi_file one, whose decoder feeds
for each step models.common.calibration.decoder_steps computes by running the fp32 graphs."""

from __future__ import annotations

import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from app.registry.store import MODEL_FILE, SIGNATURE_FILE
from models.common.calibration import DECODER, ENCODER, decoder_steps

log = logging.getLogger("dlserve.worker")
Batch = dict[str, Any]


def graphs(folder: Path) -> list[str]:
    return sorted(f.name for f in folder.glob("*.onnx"))


def session(path: Path, options: ort.SessionOptions | None = None) -> ort.InferenceSession:
    if options is None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def size_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in _files(folder) if f.name != SIGNATURE_FILE)


def _files(folder: Path) -> list[Path]:
    """The version's files: not the dot files a host's cache keeps beside them (app/store/cache.py)."""
    return [f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")]


class _Reader(CalibrationDataReader):
    """Hands ONNX Runtime's calibrator one graph's feeds, batch after batch (lazily: a decoder's steps are
    computed as they are read)."""

    def __init__(self, feeds: Iterator[dict[str, np.ndarray]]):
        self.feeds = feeds

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def _feeds_of(graph: str, parent: Path, batches: list[Batch], multi_file: bool) -> Iterator[dict[str, np.ndarray]]:
    if not multi_file:
        yield from batches
        return
    if graph == ENCODER:
        yield from (b[ENCODER] for b in batches)
        return
    if graph != DECODER:
        raise ValueError(f"{graph}: calibration batches feed {ENCODER} and {DECODER} only")
    encoder, decoder = session(parent / ENCODER), session(parent / DECODER)
    for batch in batches:
        yield from decoder_steps(encoder, decoder, batch)


def _prepared(src: Path, work: Path) -> Path:
    """ONNX Runtime's pre-processing (shape inference, graph optimisation) that its quantisation asks for;
    a graph it cannot handle is quantised as it is (ONNX Runtime says why in the log)."""
    out = work / f"pre-{src.name}"
    try:
        # symbolic shape inference is skipped: where it cannot finish it leaves files in the working folder
        quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
        return out
    except Exception as e:  # it is an optimisation only
        log.info("quantisation pre-processing skipped for %s: %s: %s", src.name, type(e).__name__, str(e)[:200])
        return src


# Weights take 7 of their 8 bits (ONNX Runtime's reduce_range). On an x86 CPU without VNNI (AVX2, AVX-512F)
# ONNX Runtime multiplies unsigned 8-bit activations by signed 8-bit weights with vpmaddubsw, which adds two
# products into a saturating int16: 255 x 127 x 2 = 64,770 does not fit, and a sum that large comes out wrong
# (measured: a matrix factorisation's last MatMul in int8 was off by up to 1.5 rating units, +0.205 RMSE;
# 7-bit weights: 0.02 at most). An int8 version may be served on any CPU, so every version gets the weights
# that are right on all of them; on a VNNI CPU it costs one bit of weight precision, not time.
REDUCE_RANGE = True


def quantise(parent: Path, out: Path, method: str, batches: list[Batch], multi_file: bool,
             op_types: tuple[str, ...] | None = None) -> None:
    """Writes the int8 version of the folder `parent` into `out` (created): each graph quantised with
    `method` ("static": QDQ, unsigned 8-bit activations calibrated (min/max) on `batches`, signed 7-bit
    weights per channel; "dynamic": signed 7-bit weights, activations scaled per batch at run time), only
    the nodes of `op_types` (models.contract.QuantisationGate.op_types; None: ONNX Runtime's default)."""
    ops = list(op_types) if op_types is not None else None
    out.mkdir(parents=True)
    for f in _files(parent):
        if f.suffix != ".onnx" and f.name != SIGNATURE_FILE:
            shutil.copy2(f, out / f.name)
    with tempfile.TemporaryDirectory(prefix="dlserve-int8-") as tmp:
        work = Path(tmp)
        for graph in graphs(parent):
            src, dst = parent / graph, out / graph
            if method == "dynamic":
                quantize_dynamic(str(_prepared(src, work)), str(dst), weight_type=QuantType.QInt8,
                                 op_types_to_quantize=ops, reduce_range=REDUCE_RANGE)
            elif method == "static":
                reader = _Reader(_feeds_of(graph, parent, batches, multi_file))
                quantize_static(str(_prepared(src, work)), str(dst), reader, quant_format=QuantFormat.QDQ,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                                op_types_to_quantize=ops, reduce_range=REDUCE_RANGE)
            else:
                raise ValueError(f"unknown quantisation method {method!r}")


def ms_per_batch(folders: dict[str, Path], batches: list[Batch], multi_file: bool,
                 options: ort.SessionOptions | None = None, repeat: int = 3) -> dict[str, float]:
    """Each version folder's median milliseconds for one calibration batch in ONNX Runtime on the CPU with
    `options` (the serving's: app.inference.runtime.session_options), a multi_file version's encoder and every
    decoder step (teacher-forced); measured in turns, batch by batch, so that what else the machine does
    weighs on each alike, after a warm-up batch each."""
    runs = {name: _timed(folder, multi_file, options) for name, folder in folders.items()}
    for one in runs.values():
        one(batches[0])
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for batch in batches:
            for name, one in runs.items():
                start = time.perf_counter()
                one(batch)
                times[name].append(time.perf_counter() - start)
    return {name: round(statistics.median(t) * 1000, 4) for name, t in times.items()}


def _timed(folder: Path, multi_file: bool, options: ort.SessionOptions | None):
    if multi_file:
        encoder, decoder = session(folder / ENCODER, options), session(folder / DECODER, options)

        def one(batch: Batch) -> None:
            for _ in decoder_steps(encoder, decoder, batch):
                pass
    else:
        model = session(folder / MODEL_FILE, options)

        def one(batch: Batch) -> None:
            model.run(None, batch)
    return one
