"""Which ONNX Runtime int8 method pays for each family (issue 20: "the choice measured per family, not
assumed"): a model of the family is trained (PyTorch, CPU), exported as the worker exports it, and quantised
both ways, each graph of a multi-file version alike (and each restricted to the matrix products, see
METHODS):

  static   QDQ, uint8 activations (MinMax) and int8 weights per channel, calibrated on the family's
           training.calibration_batches (training rows only; an encoder-decoder's decoder step is fed the
           teacher-forced steps of models.common.calibration.decoder_steps)
  dynamic  int8 weights, activations quantised per run

both by workers/int8.quantise, as a quantisation job does (weights in 7 bits; --full-range: 8).

Each of fp32, static and dynamic is scored by the family's evaluation.evaluate_onnx (ONNX Runtime, CPU) on
the validation split, never on the calibration rows, and timed: ms per validation row of that evaluation
(everything, search and metric included) and, for a one-graph family, ms per batch of 32 rows in one thread.

Default data: the files of `dlserve examples write` with a short config per family (minutes on 2 cores).
Any family on its real data: --task T --dataset PATH --format FMT --config '{"epochs": 5}'.

    .venv/bin/python benchmarks/quantisation_methods.py [--task fraud ...] [--json var/bench-quantisation.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from models import FAMILIES, family  # noqa: E402
from models.common import onnx_eval  # noqa: E402

# the example files' family configs: short runs that still learn something
EXAMPLES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "classification": ("corners.zip", "imagefolder", {"epochs": 8, "batch_size": 16, "width": 16}),
    "detection": ("squares.zip", "coco", {"epochs": 12, "batch_size": 8, "width": 16, "image_size": 64,
                                          "warmup_steps": 5}),
    "captioning": ("canvases.zip", "coco", {"epochs": 12, "batch_size": 32, "width": 8, "hidden": 64,
                                            "embed_dim": 32, "attention_dim": 32, "max_length": 12}),
    "translation": ("numbers.tsv", "parallel", {"columns": "en,fr", "source_lang": "en", "target_lang": "fr",
                                                "d_model": 64, "layers": 2, "heads": 4, "ffn": 128, "epochs": 30,
                                                "tokenizer": "word", "vocab_size": 128, "batch_size": 32,
                                                "lr": 5e-3, "warmup_steps": 20}),
    "recommendation": ("ratings.csv", "csv", {"arch": "mf", "epochs": 10, "factors": 8}),
    "fraud": ("transactions.csv", "csv", {"epochs": 10, "batch_size": 64}),
}
CALIBRATION_BATCHES, CALIBRATION_ROWS = 16, 32


# method -> the op types it quantises (None: ONNX Runtime's default for the method). The restricted ones
# leave what follows the last matrix product (box decoding, log-softmax, embeddings' Gather) in float.
METHODS = {"static": None, "dynamic": None, "static_conv_matmul": ("Conv", "MatMul", "Gemm"),
           "dynamic_matmul": ("MatMul", "Gemm")}


def quantise(method: str, fp32: Path, out: Path, contract: Any, batches: list[dict[str, Any]]) -> None:
    """What a quantisation job does (workers/int8.py: QDQ per channel, 7-bit weights unless --full-range)."""
    from workers import int8

    int8.quantise(fp32, out, method.split("_")[0], batches, contract.multi_file, METHODS[method])


def batch_ms(folder: Path, feeds: dict[str, np.ndarray], repeat: int = 30) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.log_severity_level = 1, 3
    sess = ort.InferenceSession(str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    sess.run(None, feeds)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def measure(contract: Any, data: Any, folder: Path, limit: int | None) -> dict[str, Any]:
    t = time.perf_counter()
    metrics = contract.evaluation.evaluate_onnx(data, folder, limit)
    wall = time.perf_counter() - t
    rows = metrics.get("val_held_out") or _rows(contract.task, data, limit)
    out = {"metric": metrics[contract.quantisation.metric], "eval_ms_per_row": 1000 * wall / max(rows, 1),
           "bytes": sum(p.stat().st_size for p in folder.glob("*.onnx"))}
    if not contract.multi_file:
        out["batch32_ms"] = batch_ms(folder, contract.training.example_inputs(data, 32))
    return out


def _rows(task: str, data: Any, limit: int | None) -> int:
    n = {"classification": lambda: len(data.val.y), "detection": lambda: len(data.val.x),
         "captioning": lambda: len(data.val.images), "translation": lambda: len(data.val_src),
         "fraud": lambda: len(data.y_val)}[task]()
    return onnx_eval.capped(n, limit)


def run_family(task: str, path: Path, fmt: str, config: dict[str, Any], work: Path, limit: int | None) -> dict:
    import torch

    contract = family(task)
    training = contract.training
    torch.manual_seed(0)
    cfg = contract.config(**config)
    data = training.load_dataset(path, fmt, cfg)
    t = time.perf_counter()
    model, _ = training.train(cfg, data, "cpu", lambda step, metrics: None)
    trained_s = time.perf_counter() - t
    pytorch = training.evaluate(model, data, "cpu")
    fp32 = work / task / "fp32"
    fp32.mkdir(parents=True)
    if contract.multi_file:
        training.export_artifacts(model, fp32, data)
    else:
        training.export_onnx(model, fp32 / "model.onnx", data)
    gate = contract.quantisation
    result: dict[str, Any] = {"config": config, "train_s": round(trained_s, 1), "gate": {
        "metric": gate.metric, "direction": gate.direction, "tolerance": gate.tolerance},
        "pytorch_metric": pytorch.get(gate.metric[4:]), "fp32": measure(contract, data, fp32, limit)}
    batches = list(training.calibration_batches(data, CALIBRATION_BATCHES, CALIBRATION_ROWS))
    result["calibration_batches"] = len(batches)
    for method in METHODS:
        try:
            quantise(method, fp32, work / task / method, contract, batches)
            m = measure(contract, data, work / task / method, limit)
            loss = (result["fp32"]["metric"] - m["metric"]) * (1 if gate.direction == "max" else -1)
            m.update(loss=loss, passes_gate=bool(loss <= gate.tolerance))
        except Exception as e:  # a method that does not apply is a finding, not the end of the run
            m = {"error": f"{type(e).__name__}: {e}"[:400], "trace": traceback.format_exc(limit=3)[-600:]}
        result[method] = m
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", action="append", choices=sorted(FAMILIES), help="default: every family")
    ap.add_argument("--dataset", type=Path, help="with one --task: its data instead of the example file")
    ap.add_argument("--format")
    ap.add_argument("--config", type=json.loads, default=None, help="JSON, merged over the example config")
    ap.add_argument("--limit", type=int, default=None, help="validation rows scored (default all)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--full-range", action="store_true", help="8-bit weights (ONNX Runtime's default), not the "
                    "7 bits workers/int8.py quantises to (REDUCE_RANGE: the sums that saturate without VNNI)")
    args = ap.parse_args()
    if args.full_range:
        from workers import int8

        int8.REDUCE_RANGE = False
    import torch

    torch.set_num_threads(args.threads)
    tasks = args.task or sorted(FAMILIES)
    results: dict[str, Any] = {"machine": f"{platform.machine()}, {platform.processor() or '?'}",
                               "date": time.strftime("%Y-%m-%d"), "families": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        from app.examples import write

        files = write(work / "examples")
        for task in tasks:
            file, fmt, config = EXAMPLES[task]
            path = args.dataset if args.dataset else files[file]
            fmt = args.format or fmt
            config = {**config, **(args.config or {})}
            if path.suffix == ".zip" and fmt in family(task).archive_formats:  # what the API does at upload
                with zipfile.ZipFile(path) as z:
                    z.extractall(work / f"{task}-files")
                path = work / f"{task}-files"
            started = time.perf_counter()
            results["families"][task] = r = run_family(task, path, fmt, config, work, args.limit)
            line = {k: (v if not isinstance(v, dict) else {kk: vv for kk, vv in v.items() if kk != "trace"})
                    for k, v in r.items() if k == "fp32" or k in METHODS}
            print(f"{task} ({time.perf_counter() - started:.0f} s): {json.dumps(line, default=float)}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
