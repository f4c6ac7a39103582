"""Seeded caption sets for tests and benchmarks (numpy and Pillow only): canvases holding one to three
objects in three slots (left, middle, right), each small or large, with a template caption that names
each object and where it is:

    1 object    "a large 7 on the left"  /  "a 3 in the middle"  /  "a large cat on the right"
    2 objects   "a 7 to the left of a large 2"
    3 objects   "a 7 a large 2 and a 5 from left to right"

Objects: "shapes" (drawn square / disk / cross / bar / ring, no files needed: the tests), "mnist" digits
or "cifar10" photos (from ../shared/datasets). A small object is unmarked ("a 7"), a large one "a large 7".

    python -m models.captioning.synthetic out.zip --objects mnist --images 5000
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

SHAPES = ("square", "disk", "cross", "bar", "ring")
CIFAR_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SLOTS = ("on the left", "in the middle", "on the right")


def _shape(kind: str, side: int) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    c, r = (side - 1) / 2, side / 2
    d = np.sqrt((yy - c) ** 2 + (xx - c) ** 2)
    m = {"square": np.ones((side, side), bool) & (np.abs(yy - c) < r * 0.8) & (np.abs(xx - c) < r * 0.8),
         "disk": d < r * 0.9,
         "cross": (np.abs(yy - c) < side / 7) | (np.abs(xx - c) < side / 7),
         "bar": np.abs(xx - c) < side / 6,
         "ring": (d < r * 0.95) & (d > r * 0.55)}[kind]
    return (m * 255).astype(np.uint8)


class Objects:
    """names and a draw(index, side) -> uint8 [side, side] or [side, side, 3] of one object of a class."""

    def __init__(self, kind: str, rng: np.random.Generator, shared: Path | None = None):
        self.kind = kind
        shared = shared or Path(__file__).resolve().parents[3] / "shared/datasets"
        if kind == "shapes":
            self.names, self.pool, self.channels = list(SHAPES), None, 1
        elif kind == "mnist":
            with np.load(shared / "mnist/mnist.npz") as d:
                x, y = d["x_train"], d["y_train"]
            self.names, self.channels = [str(i) for i in range(10)], 1
            self.pool = [x[y == k] for k in range(10)]
        elif kind == "cifar10":
            self.names, self.channels = list(CIFAR_LABELS), 3
            self.pool = _cifar_pool(shared / "cifar10/cifar10-train.tar.gz", 300, rng)
        else:
            raise ValueError(f"objects {kind!r}: use shapes, mnist or cifar10")

    def draw(self, k: int, side: int, rng: np.random.Generator) -> np.ndarray:
        if self.pool is None:
            return _shape(self.names[k], side)
        src = self.pool[k][rng.integers(len(self.pool[k]))]
        return np.asarray(Image.fromarray(src).resize((side, side), Image.BILINEAR))


def _cifar_pool(path: Path, per_class: int, rng: np.random.Generator) -> list[np.ndarray]:
    pool: list[list[np.ndarray]] = [[] for _ in CIFAR_LABELS]
    with tarfile.open(path) as tf:
        for m in tf:
            if not m.isfile() or not m.name.lower().endswith(".png"):
                continue
            label = Path(m.name).parent.name
            if label in CIFAR_LABELS and len(pool[CIFAR_LABELS.index(label)]) < per_class:
                pool[CIFAR_LABELS.index(label)].append(np.asarray(Image.open(tf.extractfile(m)).convert("RGB")))
            if all(len(p) >= per_class for p in pool):
                break
    return [np.stack(p) for p in pool]


def caption(objs: list[tuple[int, str, bool]]) -> str:
    """objs: (slot, name, large) sorted by slot."""
    words = [f"a {'large ' if large else ''}{name}" for _, name, large in objs]
    if len(objs) == 1:
        return f"{words[0]} {SLOTS[objs[0][0]]}"
    if len(objs) == 2:
        return f"{words[0]} to the left of {words[1]}"
    return f"{words[0]} {words[1]} and {words[2]} from left to right"


def canvases(n: int, objects: str = "shapes", size: int = 64, seed: int = 0,
             shared: Path | None = None) -> tuple[np.ndarray, list[str]]:
    """n canvases uint8 [n, size, size] (grey objects) or [n, size, size, 3] (cifar10) and their captions.
    Three slots across; a large object is size * 7/16 wide, a small one size / 4."""
    rng = np.random.default_rng(seed)
    objs = Objects(objects, rng, shared)
    shape = (n, size, size) if objs.channels == 1 else (n, size, size, 3)
    out = np.zeros(shape, np.uint8)
    caps = []
    large_side, small_side = max(4, size * 7 // 16), max(3, size // 4)
    for i in range(n):
        count = int(rng.integers(1, 4))
        slots = sorted(rng.choice(3, count, replace=False).tolist())
        placed = []
        for s in slots:
            k, large = int(rng.integers(len(objs.names))), bool(rng.random() < 0.5)
            side = large_side if large else small_side
            cx = int(round((s + 0.5) * size / 3))
            x0 = int(np.clip(cx - side // 2 + rng.integers(-size // 32, size // 32 + 1), 0, size - side))
            y0 = int(rng.integers(0, size - side + 1))
            patch = objs.draw(k, side, rng)
            region = out[i, y0:y0 + side, x0:x0 + side]
            np.maximum(region, patch, out=region)
            placed.append((s, objs.names[k], large))
        caps.append(caption(placed))
    return out, caps


def coco_archive(images: np.ndarray, captions: list[list[str]] | list[str], kind: str = "zip",
                 folder: str = "images") -> bytes:
    """A COCO captions archive (zip or tar.gz) of PNGs: captions.json + <folder>/<i>.png."""
    doc = {"images": [], "annotations": []}
    files: dict[str, bytes] = {}
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        files[f"{folder}/{i:06d}.png"] = buf.getvalue()
        doc["images"].append({"id": i, "file_name": f"{i:06d}.png", "width": img.shape[1], "height": img.shape[0]})
        caps = captions[i] if isinstance(captions[i], list) else [captions[i]]
        for c in caps:
            doc["annotations"].append({"id": len(doc["annotations"]), "image_id": i, "caption": c})
    files["annotations/captions.json"] = json.dumps(doc).encode()
    return pack(files, kind)


def pack(files: dict[str, bytes], kind: str = "zip") -> bytes:
    buf = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for name, data in files.items():
                z.writestr(name, data)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--objects", default="mnist", choices=["shapes", "mnist", "cifar10"])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    x, c = canvases(a.images, a.objects, a.size, a.seed)
    a.out.write_bytes(coco_archive(x, c, "zip" if a.out.suffix == ".zip" else "tar.gz"))
