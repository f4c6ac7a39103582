"""Image-classification quality through the platform: MNIST and CIFAR-10 trained through the job API.

Starts `dlserve serve` (API + one Celery worker on the embedded default: SQLite, file-system broker, a
fresh DLSERVE_HOME) on a free port, uploads the dataset over HTTP, submits a job, follows it, reads the
version's metrics, and scores a few images through POST /v1/models/{name}/predict.

  mnist    ../shared/datasets/mnist/mnist.npz (Keras layout): trained on the 60000 x_train images; the
           10000 x_test images are the validation split, so val_accuracy is the test accuracy.
  cifar10  ../shared/datasets/cifar10/cifar10-train.tar.gz (imagefolder, 50000 PNGs): val_fraction 0.1
           carves 5000 images (a seeded permutation, seed 0) for validation, 45000 train. arch airbench with
           its defaults (config.AIRBENCH). After training, all 5000 validation images are sent through
           POST /v1/models/cifar10/predict as PNGs and scored again (served_val_accuracy).

    .venv/bin/python benchmarks/classification.py --dataset mnist [--config epochs=6] [--threads 2]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.training import Server, follow  # noqa: E402

SHARED = ROOT.parent / "shared/datasets"
DATASETS = {
    "mnist": (SHARED / "mnist/mnist.npz", "npz"),
    "cifar10": (SHARED / "cifar10/cifar10-train.tar.gz", "imagefolder"),
}
# The configs of BENCHMARKS.md (CIFAR-10: airbench's recipe as the family fills it in).
CONFIGS = {
    "mnist": {"arch": "lenet", "width": 32, "epochs": 6, "batch_size": 128, "optimizer": "adam", "lr": 3e-3,
              "scheduler": "onecycle", "label_smoothing": 0.1},
    "cifar10": {"arch": "airbench"},
}


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def validation_images(dataset: str, config: dict, n: int | None):
    """(images uint8 [n, H, W, C or none], label names): MNIST's test images, or the CIFAR-10 validation
    split the job carved (the family's own loader and split, same seed and fraction)."""
    import numpy as np

    if dataset == "mnist":
        with np.load(DATASETS["mnist"][0]) as d:
            return d["x_test"][:n], [str(k) for k in d["y_test"][:n]]
    from models.classification import data as datasets
    from models.classification import training
    from models.classification.config import Config

    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(DATASETS[dataset][0]) as tar:
            tar.extractall(tmp, filter="data")
        loaded = datasets.load(Path(tmp), DATASETS[dataset][1], None, None)
    val = training.prepare(Config(**config), loaded).val
    return val.x[:n], [loaded.labels[k] for k in val.y[:n]]


def predict_check(server: Server, name: str, images, labels: list[str], batch: int = 64,
                  version: int | None = None) -> float:
    """Top-1 over HTTP (base64 PNGs, `batch` images a request), as a user would see them (the `version`, or
    what the model's predict serves by default)."""
    import numpy as np
    from PIL import Image

    correct = 0
    for start in range(0, len(images), batch):
        inputs = []
        for img in images[start:start + batch]:
            buf = io.BytesIO()
            Image.fromarray(img.squeeze()).save(buf, format="PNG")
            inputs.append({"image": base64.b64encode(buf.getvalue()).decode()})
        deadline = time.monotonic() + 120
        while True:  # 503 while the new version loads and warms
            r = server.http.post(f"/v1/models/{name}/predict", json={"inputs": inputs, "parameters": {"top_k": 1}},
                                 params={"version": version} if version else None)
            if r.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(1)
        r.raise_for_status()
        got = [o["labels"][0]["label"] for o in r.json()["outputs"]]
        correct += int(np.sum(np.asarray(got) == np.asarray(labels[start:start + batch])))
    return correct / len(images)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    ap.add_argument("--config", action="append", default=[], help="key=value over the benchmark's config")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the worker (OMP_NUM_THREADS)")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args()
    path, fmt = DATASETS[args.dataset]
    config = {**CONFIGS[args.dataset], **{k: parse_value(v) for k, v in (c.split("=", 1) for c in args.config)}}
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "var")
        try:
            t0 = time.monotonic()
            with open(path, "rb") as f:
                r = server.http.post("/v1/datasets", files={"file": (path.name, f)},
                                     data={"task": "classification", "format": fmt}, timeout=3600)
            dataset = r.raise_for_status().json()
            upload_s = time.monotonic() - t0
            print(f"uploaded {path.name}: {dataset['stats']['rows']} images in {upload_s:.0f} s", flush=True)
            job = server.http.post("/v1/jobs", json={"task": "classification", "dataset_id": dataset["id"],
                                                     "config": config, "register_as": args.dataset,
                                                     "alias": "production"}).raise_for_status().json()
            job = follow(server, job["id"], ("val_accuracy",))
            if job["status"] != "succeeded":
                raise SystemExit(f"job {job['status']}: {job['error']}")
            version = server.http.get(f"/v1/models/{args.dataset}/versions/1").raise_for_status().json()
            images, labels = validation_images(args.dataset, version["metadata"]["config"],
                                               20 if args.dataset == "mnist" else None)
            t0 = time.monotonic()
            served = predict_check(server, args.dataset, images, labels)
            served_s = time.monotonic() - t0
            print(f"served top-1 on {len(labels)} validation images: {served:.4f} in {served_s:.0f} s", flush=True)
        finally:
            server.close()
    wall = time.monotonic() - started
    m = version["metrics"]
    result = {
        "dataset": args.dataset, "config": version["metadata"]["config"], "val_accuracy": m["val_accuracy"],
        "val_loss": m["val_loss"], "train_seconds": m["train_seconds"], "upload_seconds": round(upload_s, 1),
        "wall_seconds": round(wall, 1), "device": job["progress"].get("device", "cpu"),
        "served_val_accuracy": served, "served_images": len(labels), "served_seconds": round(served_s, 1),
        "metrics": m, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.platform()}", "threads": args.threads, "dataset_images": dataset["stats"].get("rows"),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
