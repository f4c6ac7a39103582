"""int8 versions against their fp32 parents (issue 20 item 2), through the platform: `dlserve serve` (API and
one worker, fresh DLSERVE_HOME), the dataset uploaded, an fp32 version trained by a job, then the quantisation
job (POST /v1/models/{name}/versions/1/quantize, method auto), whose parity figures (the family's ONNX Runtime
evaluation of parent and int8 on the held-out split, ms per calibration batch) are read from the int8
version's metadata.quantisation.

  mnist           ../shared/datasets/mnist/mnist.npz, benchmarks/classification.py's config (--epochs fewer to
                  fit the time); then, for fp32 and int8 alike: test accuracy by serving (base64 PNGs through
                  /v1/models/mnist/predict?version=N, every test image unless --images), the in-process ceiling
                  (benchmarks/serving.ceiling: decode, preprocessing, ONNX Runtime with the serving's session
                  options, postprocessing; at the batcher's largest batch and at 1) and served requests/s at
                  c=32 (one PNG a request, benchmarks/loadgen) on the same server.
  cifar10         ../shared/datasets/cifar10/cifar10-train.tar.gz, arch airbench (benchmarks/classification.py);
                  served and timed as mnist, on the 5000 validation images the job held out (the family's own
                  split, rebuilt by benchmarks/classification.validation_images)
  creditcard      fraud, ../shared/datasets/creditcard/creditcard_sample.csv, a short config
  movielens-100k  recommendation (mf), u.data
  mnist-detection detection, benchmarks/detection.py's MNIST canvases (2000 train, 200 val), 5 epochs
  fra-eng         translation en->fr (a small Transformer, 25 minutes of training); and sentences/tokens per
                  second served at batch 1, 8 and 32 (sentences a request, greedy) for fp32 and int8

    .venv/bin/python benchmarks/int8.py --task mnist [--epochs 2] [--json var/bench-int8-mnist.json]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import loadgen  # noqa: E402
from benchmarks.classification import CONFIGS, DATASETS, predict_check, validation_images  # noqa: E402
from benchmarks.training import KEY, Server, follow  # noqa: E402

SHARED = ROOT.parent / "shared/datasets"
TASKS: dict[str, dict[str, Any]] = {
    "mnist": {"task": "classification", "file": DATASETS["mnist"][0], "format": "npz", "config": CONFIGS["mnist"]},
    "cifar10": {"task": "classification", "file": DATASETS["cifar10"][0], "format": "imagefolder",
                "config": CONFIGS["cifar10"]},
    "creditcard": {"task": "fraud", "file": SHARED / "creditcard/creditcard_sample.csv", "format": "csv",
                   "config": {"epochs": 20}},
    "movielens-100k": {"task": "recommendation", "file": SHARED / "movielens-100k/u.data", "format": "movielens",
                       "config": {"arch": "mf", "epochs": 15, "factors": 32}},
    # benchmarks/detection.py's MNIST canvases (a validation split of MNIST test digits), fewer of them
    "mnist-detection": {"task": "detection", "content": lambda: _mnist_canvases(2000, 200), "format": "coco",
                        "name": "mnist-detection.zip", "config": {"epochs": 5}},
    "fra-eng": {"task": "translation", "file": SHARED / "fra-eng/fra.txt", "format": "parallel",
                "config": {"source_lang": "en", "target_lang": "fr", "columns": "en,fr", "d_model": 128, "layers": 2,
                           "ffn": 256, "tokenizer": "word", "vocab_size": 4000, "batch_size": 64, "lr": 3e-3,
                           "warmup_steps": 100, "eval_beam_size": 1, "max_val": 400, "max_minutes": 25}},
}


def _mnist_canvases(n_train: int, n_val: int) -> bytes:
    from benchmarks.detection import mnist_coco_zip

    return mnist_coco_zip(n_train, n_val)


def png_b64(img) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img.squeeze()).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def wait_served(server: Server, name: str, version: int, body: dict) -> None:
    deadline = time.monotonic() + 180
    while (r := server.http.post(f"/v1/models/{name}/predict", params={"version": version}, json=body)).status_code \
            == 503 and time.monotonic() < deadline:  # 503 while the version loads and warms
        time.sleep(1)
    r.raise_for_status()


def train_and_quantise(server: Server, name: str, spec: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    t0 = time.monotonic()
    upload = (spec["name"], spec["content"]()) if "content" in spec else (spec["file"].name, spec["file"].read_bytes())
    dataset = server.http.post("/v1/datasets", files={"file": upload}, data={"task": spec["task"],
                               "format": spec["format"]}, timeout=3600).raise_for_status().json()
    job = server.http.post("/v1/jobs", json={"task": spec["task"], "dataset_id": dataset["id"], "config": config,
                                             "register_as": name, "alias": "production"}).raise_for_status().json()
    job = follow(server, job["id"])
    if job["status"] != "succeeded":
        raise SystemExit(f"training job {job['status']}: {job['error']}")
    trained_s = time.monotonic() - t0
    t0 = time.monotonic()
    q = server.http.post(f"/v1/models/{name}/versions/1/quantize",
                         json={"method": "auto", "alias": "int8"}).raise_for_status().json()
    q = follow(server, q["id"])
    out = {"config": config, "train_wall_s": round(trained_s, 1), "quantise_wall_s": round(time.monotonic() - t0, 1),
           "quantisation_job": {"status": q["status"], "error": q["error"], "metrics": q.get("metrics")}}
    parent = server.http.get(f"/v1/models/{name}/versions/1").raise_for_status().json()
    out["fp32_metrics"] = parent["metrics"]
    if q["status"] == "succeeded":
        v = server.http.get(f"/v1/models/{name}/versions/2").raise_for_status().json()
        out["lineage"] = v["metadata"]["quantisation"]
        out["int8_metrics"] = v["metrics"]
    print(json.dumps({k: out[k] for k in ("quantisation_job", "lineage") if k in out}, default=str)[:3000], flush=True)
    return out


def op_profile(model: Path, feeds: dict, options, runs: int = 50) -> dict[str, float]:
    """ONNX Runtime's own profile of `runs` runs of `feeds`: microseconds per run by op type (the kernels'
    time; what the session adds around them is 'other'), the largest first."""
    import onnxruntime as ort

    options.enable_profiling = True
    options.profile_file_prefix = str(model.parent.parent / f"profile-{model.parent.name}")
    sess = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    for _ in range(5):
        sess.run(None, feeds)
    t0 = time.perf_counter()
    for _ in range(runs):
        sess.run(None, feeds)
    wall_us = (time.perf_counter() - t0) * 1e6 / runs
    events = json.loads(Path(sess.end_profiling()).read_text())
    by_op: dict[str, float] = {}
    for e in events[-(len(events) * runs // (runs + 5)):]:  # the timed runs, not the warm-up's
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"]["op_name"]
            by_op[op] = by_op.get(op, 0.0) + e["dur"] / runs
    by_op["other"] = wall_us - sum(by_op.values())
    return {k: round(v, 1) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])}


def image_serving(server: Server, home: Path, out: dict[str, Any], name: str, n_images: int | None,
                  seconds: float) -> None:
    """Accuracy by serving, the in-process ceilings and requests/s at c=32 of version 1 (fp32) and 2 (int8).
    The timings run in turns, fp32, int8, int8, fp32, and each version keeps its better turn: what else the
    machine does weighs on both alike."""
    import numpy as np

    from app.inference.runtime import session_options
    from app.settings import Settings
    from benchmarks.serving import ceiling
    from models.classification import serving

    settings = Settings()
    x, y = validation_images(name, out["config"], n_images)
    pngs = [base64.b64decode(png_b64(img)) for img in x[:512]]
    bodies = [json.dumps({"inputs": [{"image": base64.b64encode(p).decode()}]}).encode() for p in pngs]
    port = int(server.base.rsplit(":", 1)[1])
    versions = {"fp32": 1, "int8": 2}
    for label, version in versions.items():
        wait_served(server, name, version, {"inputs": [{"image": png_b64(x[0])}]})
        t0 = time.monotonic()
        acc = predict_check(server, name, x, y, version=version)
        print(f"{label}: served held-out accuracy {acc:.4f} on {len(y)} images ({time.monotonic() - t0:.0f} s)",
              flush=True)
        out[label] = {"served_accuracy": acc, "served_images": len(y), "ceiling": {}, "served_c32": {}}
    for turn, label in enumerate(("fp32", "int8", "int8", "fp32")):
        version, mine = versions[label], out[label]
        v = server.http.get(f"/v1/models/{name}/versions/{version}").raise_for_status().json()
        model = home / "artifacts/models" / name / str(version) / "model.onnx"
        top = ceiling(model, pngs, seconds=seconds / 4, signature={"inputs": v["inputs"], "outputs": v["outputs"]},
                      metadata=v["metadata"], batches=(1, settings.max_batch_size), options=session_options(settings))
        for b, ips in top["by_batch"].items():
            mine["ceiling"][b] = max(mine["ceiling"].get(b, 0.0), ips)
        print(f"turn {turn}: {label} in-process ceiling {top['by_batch']} images/s (batch: images/s)", flush=True)
        if "op_profile_us" not in mine:
            spec = serving.make_spec({"inputs": v["inputs"], "outputs": v["outputs"]}, v["metadata"])
            batch = np.concatenate([serving.image_tensor(img, spec.size, spec.mean, spec.std)
                                    for img in x[:settings.max_batch_size]])
            mine["op_profile_us"] = op_profile(model, {v["inputs"][0]["name"]: batch.astype(np.float32)},
                                               session_options(settings))
            print(f"{label}: microseconds per batch of {len(batch)} by op type: {mine['op_profile_us']}", flush=True)
        reqs = loadgen.build_requests(f"/v1/models/{name}/predict?version={version}", bodies,
                                      {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
        loadgen.run("127.0.0.1", port, reqs, 8, warmup=0.5, duration=2)
        res = loadgen.run("127.0.0.1", port, reqs, 32, duration=seconds / 2)
        print(f"turn {turn}: {label} served c=32 {res.throughput:.1f} req/s, p50 {res.p50_ms:.1f} ms, "
              f"p99 {res.p99_ms:.1f} ms, statuses {res.statuses}", flush=True)
        if res.throughput > mine["served_c32"].get("requests_per_s", 0.0):
            mine["served_c32"] = {"requests_per_s": res.throughput, "p50_ms": res.p50_ms, "p99_ms": res.p99_ms,
                                  "statuses": res.statuses}
    fp32_top = max(out["fp32"]["ceiling"].values())
    out["summary"] = {"int8_served_over_fp32_ceiling": out["int8"]["served_c32"]["requests_per_s"] / fp32_top,
                      "fp32_served_over_fp32_ceiling": out["fp32"]["served_c32"]["requests_per_s"] / fp32_top,
                      "int8_ceiling_over_fp32_ceiling": max(out["int8"]["ceiling"].values()) / fp32_top,
                      "accuracy_points_lost_served": 100 * (out["fp32"]["served_accuracy"]
                                                            - out["int8"]["served_accuracy"])}
    print(f"summary: {out['summary']}", flush=True)


def translation_serving(server: Server, out: dict[str, Any], sentences: list[str]) -> None:
    """Sentences and output tokens (words of the translations) a second at 1, 8 and 32 sentences a request."""
    versions = ((1, "fp32"), (2, "int8")) if "lineage" in out else ((1, "fp32"),)
    for version, label in versions:
        wait_served(server, "fra-eng", version, {"inputs": [{"text": sentences[0]}]})
        out[f"{label}_served"] = by_batch = {}
        for batch in (1, 8, 32):
            done = tokens = 0
            t0 = time.perf_counter()
            while done < max(64, batch * 4) and time.perf_counter() - t0 < 60:
                chunk = [{"text": sentences[(done + i) % len(sentences)]} for i in range(batch)]
                r = server.http.post("/v1/models/fra-eng/predict", params={"version": version},
                                     json={"inputs": chunk, "parameters": {"beam_size": 1}}).raise_for_status()
                tokens += sum(len(o["translation"].split()) for o in r.json()["outputs"])
                done += batch
            wall = time.perf_counter() - t0
            by_batch[batch] = {"sentences_per_s": round(done / wall, 2), "tokens_per_s": round(tokens / wall, 1)}
        print(f"{label}: served greedy {by_batch}", flush=True)


def fra_sentences(n: int = 256) -> list[str]:
    lines = (SHARED / "fra-eng/fra.txt").read_text().splitlines()
    return [line.split("\t")[0] for line in lines[-n:]]  # the file's last lines: the longest sentences


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=sorted(TASKS), required=True)
    ap.add_argument("--epochs", type=int, default=None, help="over the config's epochs")
    ap.add_argument("--config", type=json.loads, default=None, help="JSON over the config")
    ap.add_argument("--images", type=int, default=None, help="held-out images scored by serving (default all)")
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of each c=32 load run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    spec = TASKS[args.task]
    config = {**spec["config"], **(args.config or {}), **({"epochs": args.epochs} if args.epochs else {})}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "var"
        server = Server(home)
        try:
            out = train_and_quantise(server, args.task, spec, config)
            if args.task in ("mnist", "cifar10") and "lineage" in out:
                image_serving(server, home, out, args.task, args.images, args.seconds)
            if args.task == "fra-eng":
                translation_serving(server, out, fra_sentences())
        finally:
            server.close()
    out.update(task=args.task, date=time.strftime("%Y-%m-%d"), wall_s=round(time.monotonic() - started, 1),
               machine=f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
               load_average=os.getloadavg())
    print(json.dumps({k: v for k, v in out.items() if k not in ("fp32_metrics", "int8_metrics")}, default=str,
                     indent=1)[:6000])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
