"""Object-detection quality through dlserve: a seeded MNIST detection set, trained through the job API.

The set: 128x128 grey canvases, each with 1-5 MNIST digits scaled to 16-48 px (square) and pasted at
random positions (a new digit may overlap earlier ones up to IoU 0.3; where digits overlap the brighter
pixel wins). Training canvases take digits from MNIST's training images, validation canvases from its
test images, so no digit is in both. COCO annotations (instances_train.json / instances_val.json, the
box of each pasted square), zipped with the PNGs.

The road: `dlserve serve` on a fresh DLSERVE_HOME and a free port (API + SQLite + file broker + one
worker), POST /v1/datasets (format coco), POST /v1/jobs, follow until done, read the metrics the run
recorded (validation COCO mAP by pycocotools), predict a validation canvas, and check the boxes.
With --coco-mini it then runs the same road on ../shared/datasets/coco-mini (80 real images).

    .venv/bin/python benchmarks/detection.py [--train 20000 --val 500 --config '{"epochs": 5}'] [--coco-mini]
        [--threads 1] [--json var/bench-detection.json]

The defaults are the recipe of BENCHMARKS.md: many distinct canvases seen few times each. With 3000
canvases seen 20 times (the same number of steps as 12000 seen 5 times) the network learnt its training
canvases (mAP@.5 0.986 on 500 of them) much better than new ones (val 0.928); with 12000 seen 5 times it
did not (0.956 against val 0.958).
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
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared/datasets"
CANVAS = 128


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    area = lambda z: (z[..., 2] - z[..., 0]) * (z[..., 3] - z[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def canvases(digits: np.ndarray, labels: np.ndarray, n: int, seed: int, canvas: int = CANVAS):
    """Yields (uint8 [canvas, canvas] image, boxes [[x, y, w, h]], classes) n times, seeded."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        img = np.zeros((canvas, canvas), np.uint8)
        boxes: list[list[int]] = []
        classes: list[int] = []
        for _ in range(int(rng.integers(1, 6))):
            for _attempt in range(50):
                s = int(rng.integers(16, 49))
                x, y = int(rng.integers(0, canvas - s + 1)), int(rng.integers(0, canvas - s + 1))
                box = np.array([x, y, x + s, y + s], np.float64)
                placed = np.array([[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in boxes], np.float64)
                if not boxes or _iou(box, placed).max() <= 0.3:
                    break
            else:
                continue
            k = int(rng.integers(0, len(digits)))
            d = np.asarray(Image.fromarray(digits[k]).resize((s, s), Image.BILINEAR))
            img[y:y + s, x:x + s] = np.maximum(img[y:y + s, x:x + s], d)
            boxes.append([x, y, s, s])
            classes.append(int(labels[k]))
        yield img, boxes, classes


def mnist_coco_zip(n_train: int, n_val: int, seed: int = 0, mnist: Path = SHARED / "mnist/mnist.npz") -> bytes:
    with np.load(mnist) as d:
        splits = {"train": (d["x_train"], d["y_train"], n_train, seed),
                  "val": (d["x_test"], d["y_test"], n_val, seed + 1)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for split, (x, y, n, s) in splits.items():
            doc = {"images": [], "annotations": [],
                   "categories": [{"id": c, "name": str(c)} for c in range(10)]}
            for i, (img, boxes, classes) in enumerate(canvases(x, y, n, s)):
                name = f"{split}/{i:06d}.png"
                png = io.BytesIO()
                Image.fromarray(img).save(png, "PNG", compress_level=1)
                z.writestr(name, png.getvalue())
                doc["images"].append({"id": i, "file_name": name, "width": CANVAS, "height": CANVAS})
                for b, c in zip(boxes, classes, strict=True):
                    doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": i, "category_id": c,
                                               "bbox": b, "area": b[2] * b[3], "iscrowd": 0})
            z.writestr(f"annotations/instances_{split}.json", json.dumps(doc))
    return buf.getvalue()


def coco_mini_zip(root: Path = SHARED / "coco-mini") -> bytes:
    """../shared/datasets/coco-mini as uploaded: annotations/instances_train2017.json + train2017/*.jpg."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.write(root / "annotations/instances_train2017.json", "annotations/instances_train2017.json")
        for p in sorted((root / "train2017").iterdir()):
            z.write(p, f"train2017/{p.name}")
    return buf.getvalue()


def run_job(server, dataset_id: str, config: dict, name: str) -> dict:
    from benchmarks.training import follow

    job = server.http.post("/v1/jobs", json={"task": "detection", "dataset_id": dataset_id, "config": config,
                                             "register_as": name, "alias": "production"}).raise_for_status().json()
    job = follow(server, job["id"], ("val_map", "val_map_50"), every_s=15)
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job['status']}: {job['error']}")
    return job


def predict(server, name: str, png: bytes, **params) -> list[dict]:
    r = server.http.post(f"/v1/models/{name}/predict", json={
        "inputs": [{"image": base64.b64encode(png).decode()}], "parameters": params}).raise_for_status()
    return r.json()["outputs"][0]["detections"]


def _box_iou(a, b) -> float:
    return float(_iou(np.asarray(a, np.float64), np.asarray([b], np.float64))[0])


def check_served(server, name: str, zip_bytes: bytes, json_name: str, n: int = 20) -> dict:
    """Predicts n images of the set as uploaded (original size) and matches the served boxes against the
    annotations in the original pixels: the share of annotated boxes found at IoU >= 0.5 with the right label."""
    z = zipfile.ZipFile(io.BytesIO(zip_bytes))
    doc = json.loads(z.read(json_name))
    names = {c["id"]: c["name"] for c in doc["categories"]}
    by_image: dict[int, list] = {}
    for a in doc["annotations"]:
        if not a.get("iscrowd"):
            by_image.setdefault(a["image_id"], []).append(a)
    found = total = 0
    sizes = set()
    for im in doc["images"][:n]:
        data = next(z.read(k) for k in z.namelist() if k.endswith(im["file_name"]))
        sizes.add((im["width"], im["height"]))
        dets = predict(server, name, data, score_threshold=0.3)
        for a in by_image.get(im["id"], []):
            x, y, w, h = a["bbox"]
            total += 1
            found += any(d["label"] == names[a["category_id"]] and _box_iou([x, y, x + w, y + h], d["box"]) >= 0.5
                         for d in dets)
    return {"images": min(n, len(doc["images"])), "boxes": total, "found_at_iou_0.5": found,
            "recall": round(found / max(total, 1), 3), "image_sizes": len(sizes)}


def mnist_road(server, mnist: bytes, args, results: dict) -> None:
    t = time.monotonic()
    ds = server.http.post("/v1/datasets", files={"file": ("mnist-detection.zip", mnist)},
                          data={"task": "detection", "format": "coco"}).raise_for_status().json()
    print(f"uploaded: {ds['stats']['images']} images, {ds['stats']['boxes']} boxes "
          f"({time.monotonic() - t:.1f} s)", flush=True)
    t = time.monotonic()
    job = run_job(server, ds["id"], json.loads(args.config), "mnist-det")
    m = job["metrics"]
    results["mnist"] = {"canvases": {"train": args.train, "val": args.val, "seed": args.seed},
                        "config": job["config"], "job_wall_s": round(time.monotonic() - t, 1),
                        "train_seconds": m["train_seconds"], "val_map": m["val_map"],
                        "val_map_50": m["val_map_50"], "val_map_75": m["val_map_75"],
                        "served": check_served(server, "mnist-det", mnist, "annotations/instances_val.json",
                                               50)}
    print(json.dumps(results["mnist"], indent=1), flush=True)


def main() -> None:
    from benchmarks.training import Server

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=20000, help="training canvases")
    ap.add_argument("--val", type=int, default=500, help="validation canvases")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default='{"epochs": 5}', help="job config (JSON) for the MNIST set")
    ap.add_argument("--coco-mini", action="store_true", help="also run the road on ../shared/datasets/coco-mini")
    ap.add_argument("--no-mnist", action="store_true", help="skip the MNIST set (with --coco-mini: only that)")
    ap.add_argument("--coco-config", default='{"epochs": 10, "image_size": 256, "batch_size": 16}')
    ap.add_argument("--threads", type=int, default=0,
                    help="OMP/torch threads of the worker (0: torch decides); 1 is faster on a busy shared machine")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by `dlserve serve` and its worker

    started = time.monotonic()
    t = time.monotonic()
    mnist = b"" if args.no_mnist else mnist_coco_zip(args.train, args.val, args.seed)
    if mnist:
        print(f"generated the MNIST detection set: {args.train} train + {args.val} val canvases, "
              f"{len(mnist) / 2**20:.1f} MiB zip, {time.monotonic() - t:.1f} s", flush=True)
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
                     "date": str(datetime.now().date())}
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "var")
        try:
            if not args.no_mnist:
                mnist_road(server, mnist, args, results)
            if args.coco_mini:
                coco = coco_mini_zip()
                ds = server.http.post("/v1/datasets", files={"file": ("coco-mini.zip", coco)},
                                      data={"task": "detection", "format": "coco"}).raise_for_status().json()
                t = time.monotonic()
                job = run_job(server, ds["id"], json.loads(args.coco_config), "coco-mini")
                m = job["metrics"]
                served = check_served(server, "coco-mini", coco, "annotations/instances_train2017.json", 80)
                im = zipfile.ZipFile(io.BytesIO(coco)).read("train2017/" + sorted(
                    p.name for p in (SHARED / "coco-mini/train2017").iterdir())[0])
                w, h = Image.open(io.BytesIO(im)).size
                dets = predict(server, "coco-mini", im, score_threshold=0.05)
                inside = all(0 <= d["box"][0] <= d["box"][2] <= w and 0 <= d["box"][1] <= d["box"][3] <= h
                             for d in dets)
                results["coco_mini"] = {"config": job["config"], "job_wall_s": round(time.monotonic() - t, 1),
                                        "val_map": m["val_map"], "val_map_50": m["val_map_50"],
                                        "served_on_training_images": served,
                                        "first_image": {"size": [w, h], "detections": len(dets),
                                                        "boxes_inside_the_original_frame": inside,
                                                        "top": dets[:3]}}
                print(json.dumps(results["coco_mini"], indent=1), flush=True)
        finally:
            server.close()
    results["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
