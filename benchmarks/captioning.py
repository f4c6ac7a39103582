"""Image-captioning quality through the platform: everything goes through the job API of `dlserve serve`
(API + one Celery worker on the embedded default: SQLite, file-system broker, a fresh DLSERVE_HOME).

  canvases  a generated, seeded set (models/captioning/synthetic.py, seed 0): 64x64 canvases holding one
            to three MNIST digits (../shared/datasets/mnist/mnist.npz, x_train) in three slots, small or
            large, with a template caption ("a 7 to the left of a large 2"). --canvases N images, of which
            val_fraction 0.1 (a seeded permutation of the images, seed 0) validate. Target: val BLEU-4 >= 0.9.
  flickr8k  ../shared/datasets/flickr8k (875 images, captions.txt, 5 captions each), uploaded as a flickr8k
            archive; 10 % of the images (seeded permutation, seed 0: 88 images, 440 captions) validate.
            The encoder is first trained through the platform as a CIFAR-10 classifier
            (../shared/datasets/cifar10/cifar10-train.tar.gz, ResNet-8 width 16; --classifier-epochs) and
            the captioning job starts from it (init_from "cifar10-encoder@production", freeze_backbone: on
            787 training images, fine-tuning the backbone scored lower on BLEU-4 and CIDEr). The run's metrics
            hold, computed on the same validation images in the same evaluation: the model's BLEU-1..4 and
            CIDEr, the most frequent training caption's (val_baseline_frequent_*) and the first caption of
            the nearest training image in the model's encoder-feature space (val_baseline_nearest_*).

    .venv/bin/python benchmarks/captioning.py --task canvases [--canvases 8000] [--config epochs=40] [--threads 1]
    .venv/bin/python benchmarks/captioning.py --task flickr8k [--classifier-epochs 3] [--threads 2]
    (--home DIR keeps the server's home: a second flickr8k run reuses the classifier registered there.)
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
CIFAR = SHARED / "cifar10/cifar10-train.tar.gz"
FLICKR = SHARED / "flickr8k"
ENCODER = "cifar10-encoder"
CLASSIFIER_CONFIG = {"arch": "resnet", "width": 16, "depth": 8, "epochs": 3, "batch_size": 128, "optimizer": "sgd",
                     "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "scheduler": "onecycle",
                     "label_smoothing": 0.1}
CONFIGS = {
    "canvases": {"arch": "lenet", "width": 32, "grid": 8, "epochs": 40, "batch_size": 64, "lr": 3e-3,
                 "dropout": 0.1, "hidden": 256, "embed_dim": 64, "attention_dim": 128, "max_length": 20,
                 "eval_beam_size": 3},
    "flickr8k": {"arch": "resnet", "width": 16, "depth": 8, "image_size": 64, "grid": 8, "epochs": 15,
                 "batch_size": 64, "lr": 2e-3, "dropout": 0.5, "hidden": 256, "embed_dim": 128,
                 "attention_dim": 128, "vocab_size": 2000, "min_frequency": 3, "max_length": 20,
                 "eval_beam_size": 3, "init_from": f"{ENCODER}@production", "freeze_backbone": True},
}


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def train(server: Server, task: str, dataset_id: str, config: dict, name: str, key: str) -> tuple[dict, dict]:
    job = server.http.post("/v1/jobs", json={"task": task, "dataset_id": dataset_id, "config": config,
                                             "register_as": name, "alias": "production"}).raise_for_status().json()
    job = follow(server, job["id"], ("val_loss", key))
    if job["status"] != "succeeded":
        raise SystemExit(f"{task} job {job['status']}: {job['error']}")
    latest = server.http.get(f"/v1/models/{name}").raise_for_status().json()["latest_version"]
    return job, server.http.get(f"/v1/models/{name}/versions/{latest}").raise_for_status().json()


def upload(server: Server, name: str, content: bytes, task: str, fmt: str) -> dict:
    r = server.http.post("/v1/datasets", files={"file": (name, content)}, data={"task": task, "format": fmt},
                         timeout=3600)
    if r.status_code == 409:  # the same bytes, uploaded before (a kept --home)
        return r.json()
    return r.raise_for_status().json()


def predict(server: Server, name: str, images: list[bytes], params: dict | None = None) -> list[dict]:
    inputs = [{"image": base64.b64encode(b).decode()} for b in images]
    deadline = time.monotonic() + 120
    while True:  # 503 while the new version loads and warms
        r = server.http.post(f"/v1/models/{name}/predict", json={"inputs": inputs, "parameters": params or {}})
        if r.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(1)
    return r.raise_for_status().json()["outputs"]


def scores(m: dict, prefix: str = "val_") -> dict:
    return {k: round(m[f"{prefix}{k}"], 4) for k in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider")
            if f"{prefix}{k}" in m}


def run_canvases(server: Server, args, config: dict) -> dict:
    import numpy as np
    from PIL import Image

    from models.captioning import synthetic
    from models.captioning.metrics import caption_scores

    t0 = time.monotonic()
    x, caps = synthetic.canvases(args.canvases, "mnist", 64, seed=0)
    ds = upload(server, "canvases.zip", synthetic.coco_archive(x, caps), "captioning", "coco")
    print(f"uploaded {ds['stats']['images']} canvases in {time.monotonic() - t0:.0f} s", flush=True)
    job, version = train(server, "captioning", ds["id"], config, "canvases", "val_bleu_4")
    xt, ct = synthetic.canvases(50, "mnist", 64, seed=12345)  # fresh canvases over HTTP, as a user sends them
    pngs = []
    for img in xt:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    outs = predict(server, "canvases", pngs)
    served = caption_scores([o["caption"] for o in outs], [[c] for c in ct])
    m = version["metrics"]
    return {"task": "canvases", "images": args.canvases, "train_images": version["metadata"]["train_images"],
            "val_images": version["metadata"]["val_images"], "val": scores(m),
            "baseline_frequent": scores(m, "val_baseline_frequent_"),
            "baseline_nearest": scores(m, "val_baseline_nearest_"),
            "served_fresh50": {"bleu_4": round(served["bleu_4"], 4),
                               "exact": float(np.mean([o["caption"] == c for o, c in zip(outs, ct, strict=True)]))},
            "examples": [{"caption": o["caption"], "truth": c} for o, c in zip(outs[:5], ct[:5], strict=True)],
            "train_seconds": m.get("train_seconds"), "device": job["progress"].get("device", "cpu"),
            "config": version["metadata"]["config"], "parity": version["metadata"]["parity"]}


def flickr_archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(FLICKR / "captions.txt", arcname="Flickr8k.token.txt")
        for p in sorted((FLICKR / "images").iterdir()):
            t.add(p, arcname=f"images/{p.name}")
    return buf.getvalue()


def cifar_subset(per_class: int) -> bytes:
    """The first per_class images of each CIFAR-10 class, as an imagefolder tar.gz (a short check run)."""
    counts: dict[str, int] = {}
    buf = io.BytesIO()
    with tarfile.open(CIFAR) as src, tarfile.open(fileobj=buf, mode="w:gz") as dst:
        for m in src:
            label = Path(m.name).parent.name
            if m.isfile() and m.name.lower().endswith(".png") and counts.get(label, 0) < per_class:
                counts[label] = counts.get(label, 0) + 1
                dst.addfile(m, src.extractfile(m))
    return buf.getvalue()


def run_flickr(server: Server, args, config: dict) -> dict:
    classifier = None
    existing = server.http.get(f"/v1/models/{ENCODER}")
    if existing.status_code == 200 and not args.retrain_classifier:
        print(f"reusing {ENCODER}@production", flush=True)
    else:
        if args.classifier_images:
            ds = upload(server, "cifar10-subset.tar.gz", cifar_subset(args.classifier_images // 10),
                        "classification", "imagefolder")
        else:
            with open(CIFAR, "rb") as f:
                ds = upload(server, CIFAR.name, f.read(), "classification", "imagefolder")
        print(f"uploaded CIFAR-10: {ds['stats'].get('rows')} images", flush=True)
        cc = {**CLASSIFIER_CONFIG, "epochs": args.classifier_epochs}
        _, v = train(server, "classification", ds["id"], cc, ENCODER, "val_accuracy")
        classifier = {"val_accuracy": v["metrics"]["val_accuracy"], "train_seconds": v["metrics"]["train_seconds"],
                      "config": cc, "images": args.classifier_images or 50000}
        print(f"classifier: val_accuracy {classifier['val_accuracy']:.4f}", flush=True)
    ds = upload(server, "flickr8k.tar.gz", flickr_archive(), "captioning", "flickr8k")
    print(f"uploaded Flickr8k: {ds['stats']['images']} images, {ds['stats']['captions']} captions", flush=True)
    job, version = train(server, "captioning", ds["id"], config, "flickr8k", "val_bleu_4")
    m = version["metrics"]
    model, freq, near = scores(m), scores(m, "val_baseline_frequent_"), scores(m, "val_baseline_nearest_")
    beats = {k: model[k] > freq[k] and model[k] > near[k] for k in ("bleu_4", "cider")}
    sample = sorted((FLICKR / "images").iterdir())[:3]
    outs = predict(server, "flickr8k", [p.read_bytes() for p in sample], {"n_best": 2})
    return {"task": "flickr8k", "classifier": classifier, "train_images": version["metadata"]["train_images"],
            "val_images": version["metadata"]["val_images"], "val": model, "baseline_frequent": freq,
            "baseline_nearest": near, "beats_both_baselines": beats,
            "init": {k: m[k] for k in ("init_tensors", "init_decoder_loaded") if k in m},
            "examples": [{"image": p.name, "caption": o["caption"], "n_best": o.get("n_best")}
                         for p, o in zip(sample, outs, strict=True)],
            "train_seconds": m.get("train_seconds"), "device": job["progress"].get("device", "cpu"),
            "config": version["metadata"]["config"], "parity": version["metadata"]["parity"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["canvases", "flickr8k"], required=True)
    ap.add_argument("--canvases", type=int, default=8000, help="generated MNIST canvases (train + val)")
    ap.add_argument("--classifier-epochs", type=int, default=3, help="epochs of the CIFAR-10 encoder's run")
    ap.add_argument("--classifier-images", type=int, default=None,
                    help="train the encoder on this many CIFAR-10 images (a short check); default all 50000")
    ap.add_argument("--retrain-classifier", action="store_true", help="train the encoder even if --home has one")
    ap.add_argument("--config", action="append", default=[], help="key=value over the benchmark's config")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the worker (OMP_NUM_THREADS)")
    ap.add_argument("--home", type=Path, help="the server's DLSERVE_HOME (kept); default a temporary one")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args()
    config = {**CONFIGS[args.task], **{k: parse_value(v) for k, v in (c.split("=", 1) for c in args.config)}}
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(args.home or Path(tmp) / "var")
        try:
            result = (run_canvases if args.task == "canvases" else run_flickr)(server, args, config)
        finally:
            server.close()
    result.update({"wall_seconds": round(time.monotonic() - started, 1), "threads": args.threads,
                   "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"})
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
