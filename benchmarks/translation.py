"""Machine-translation quality and decoding latency through the platform.

Starts `dlserve serve` (API + one Celery worker on the embedded default: SQLite, file-system broker, a
fresh DLSERVE_HOME) on a free port, uploads the dataset over HTTP, submits a job, follows it, reads the
version's metrics (corpus sacreBLEU on the validation split, with its signature) and then times
POST /v1/models/{name}/predict, one sentence a request, at beam 1 and beam 4.

  multi30k  ../shared/datasets/multi30k (train.de/train.en 29000 pairs, val.de/val.en 1014), German to
            English, uploaded as a tar.gz (format parallel); val.* is the validation split.
  fra-eng   ../shared/datasets/fra-eng/fra.txt (17065 Anki pairs, English first), English to French,
            uploaded as `parallel` with columns=en,fr; the validation split is carved by the run:
            val_fraction 0.05 of a seeded permutation (seed 0) = 853 pairs, the rest train.

    .venv/bin/python benchmarks/translation.py --dataset multi30k [--minutes 60] [--config epochs=20]
        [--threads 2] [--latency 100] [--json var/bench-translation-multi30k.json] [--direct]

--minutes sets the run's max_minutes (training stops there, then evaluation, export and registration).
--direct runs the family's functions in this process instead (no server; the same training, evaluation,
export and ONNX decoding), for when the platform is not at hand.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared/datasets"
DATASETS = {
    "multi30k": {"files": SHARED / "multi30k", "format": "parallel",
                 "config": {"source_lang": "de", "target_lang": "en"}},
    "fra-eng": {"files": SHARED / "fra-eng/fra.txt", "format": "parallel",
                "config": {"source_lang": "en", "target_lang": "fr", "columns": "en,fr"}},
}


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def payload(name: str) -> tuple[str, bytes]:
    src = DATASETS[name]["files"]
    if src.is_file():
        return src.name, src.read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for f in sorted(src.iterdir()):
            if f.name.split(".")[0] in ("train", "val"):
                t.add(f, arcname=f"{name}/{f.name}")
    return f"{name}.tar.gz", buf.getvalue()


def val_sources(name: str, config: dict, n: int) -> list[str]:
    """The first n sentences of the validation split the run uses (for the latency measurement)."""
    from models.translation import data as datasets
    from models.translation.config import Config

    src = DATASETS[name]["files"]
    if src.is_dir():
        return (src / f"val.{config['source_lang']}").read_text().splitlines()[:n]
    import numpy as np

    cfg = Config(**config)
    corpus = datasets.read(src, "parallel", cfg.columns.split(","))
    texts = corpus.texts[cfg.source_lang]
    order = np.random.default_rng(cfg.seed).permutation(len(texts))
    n_val = min(len(texts) - 1, cfg.max_val, max(1, round(len(texts) * cfg.val_fraction)))
    return [texts[i] for i in np.sort(order[:n_val])][:n]


def summary(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    return {"sentences": len(ms), "mean_ms": round(statistics.mean(ms), 2), "p50_ms": round(ms[len(ms) // 2], 2),
            "p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 2)}


def through_api(name: str, config: dict, sentences: list[str]) -> dict:
    from benchmarks.training import Server, follow

    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "var")
        try:
            filename, content = payload(name)
            t0 = time.monotonic()
            dataset = server.http.post("/v1/datasets", files={"file": (filename, content)},
                                       data={"task": "translation", "format": DATASETS[name]["format"]},
                                       timeout=3600).raise_for_status().json()
            print(f"uploaded {filename}: {dataset['stats']}", flush=True)
            job = server.http.post("/v1/jobs", json={"task": "translation", "dataset_id": dataset["id"],
                                                     "config": config, "register_as": name,
                                                     "alias": "production"}).raise_for_status().json()
            job = follow(server, job["id"], ("loss", "val_loss", "val_bleu"))
            if job["status"] != "succeeded":
                raise SystemExit(f"job {job['status']}: {job['error']}")
            run_seconds = time.monotonic() - t0
            version = server.http.get(f"/v1/models/{name}/versions/1").raise_for_status().json()
            latency = {}
            deadline = time.monotonic() + 300
            for beam in (1, 4):
                times, outputs = [], []
                for s in sentences:
                    while True:  # 503 while the new version loads and warms
                        t = time.perf_counter()
                        r = server.http.post(f"/v1/models/{name}/predict",
                                             json={"inputs": [{"text": s}], "parameters": {"beam_size": beam}})
                        if r.status_code != 503 or time.monotonic() > deadline:
                            break
                        time.sleep(1)
                    times.append(time.perf_counter() - t)
                    outputs.append(r.raise_for_status().json()["outputs"][0]["translation"])
                latency[f"beam_{beam}"] = {**summary(times), "examples": outputs[:3]}
        finally:
            server.close()
    m = version["metrics"]
    return {"bleu": m.get("val_bleu"), "val_loss": m.get("val_loss"), "bleu_signature":
            version["metadata"].get("bleu_signature"), "train_seconds": m.get("train_seconds"),
            "run_seconds": round(run_seconds, 1), "epochs_run": m.get("epochs_run"),
            "device": job["progress"].get("device", "cpu"), "latency_http_per_sentence": latency,
            "examples": version["metadata"].get("examples"), "parity": version["metadata"].get("parity"),
            "config": version["metadata"]["config"], "pairs": {"train": version["metadata"].get("train_pairs"),
                                                               "val": version["metadata"].get("val_pairs")}}


def direct(name: str, config: dict, sentences: list[str]) -> dict:
    """The family's own functions in this process: train, evaluate, export, then ONNX decoding latency."""
    import onnxruntime as ort
    import torch

    from models.translation import serving, training
    from models.translation.config import Config

    cfg = Config(**config)
    t0 = time.monotonic()
    src = DATASETS[name]["files"]
    data = training.load_dataset(src, DATASETS[name]["format"], cfg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    last = [0.0]

    def report(step, metrics):
        if "val_loss" in metrics or time.monotonic() - last[0] > 30:
            last[0] = time.monotonic()
            print(f"  step {step} {json.dumps({k: round(v, 4) for k, v in metrics.items()})}", flush=True)

    started = time.monotonic()
    model, metrics = training.train(cfg, data, device, report)
    train_seconds = time.monotonic() - started
    t = time.monotonic()
    scores = training.evaluate(model, data, device)
    eval_seconds = time.monotonic() - t
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        signature = training.export_artifacts(model, folder, data)
        parity = training.check_parity(model, folder, data)
        meta = training.version_metadata(cfg, data)
        spec = serving.make_spec(signature, meta, folder=folder)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # as one API worker thread serves one batch

        def open_session(p):
            return ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])

        runner = serving.make_runner(open_session(folder / "model.onnx"), folder, spec, open_session)
        latency = {}
        for beam in (1, 4):
            params = serving.check_params({"beam_size": beam})
            times, outputs = [], []
            for i, s in enumerate(sentences):
                t = time.perf_counter()
                out = runner(serving.preprocess({"text": s}, i, params, spec))
                outputs.append(serving.postprocess(out, params, spec)["translation"])
                times.append(time.perf_counter() - t)
            latency[f"beam_{beam}"] = {**summary(times), "examples": outputs[:3]}
    return {"bleu": scores["bleu"], "val_loss": scores["loss"], "bleu_signature": data.info["bleu_signature"],
            "train_seconds": round(train_seconds, 1), "eval_seconds": round(eval_seconds, 1),
            "run_seconds": round(time.monotonic() - t0, 1), "epochs_run": metrics.get("epochs_run"),
            "device": device, "latency_onnx_per_sentence": latency, "examples": data.info.get("examples"),
            "parity": parity, "config": data.info["config"],
            "pairs": {"train": len(data.train_src), "val": len(data.val_src)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    ap.add_argument("--minutes", type=float, default=None, help="the run's max_minutes (training time budget)")
    ap.add_argument("--config", action="append", default=[], help="key=value over the default config")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the worker (OMP_NUM_THREADS)")
    ap.add_argument("--latency", type=int, default=100, help="validation sentences timed at beam 1 and 4")
    ap.add_argument("--direct", action="store_true", help="no server: the family's functions in this process")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args()
    config = {**DATASETS[args.dataset]["config"],
              **{k: parse_value(v) for k, v in (c.split("=", 1) for c in args.config)}}
    if args.minutes:
        config["max_minutes"] = args.minutes
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        if args.direct:
            import torch

            torch.set_num_threads(args.threads)
    sentences = val_sources(args.dataset, config, args.latency)
    started = time.monotonic()
    result = (direct if args.direct else through_api)(args.dataset, config, sentences)
    result = {"dataset": args.dataset, "mode": "direct" if args.direct else "api", **result,
              "wall_seconds": round(time.monotonic() - started, 1), "threads": args.threads,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"}
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
