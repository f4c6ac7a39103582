"""`dlserve examples write DIR`: everything the README's blocks use, made on the spot (numpy, Pillow and onnx
only, no network): a tiny ONNX classifier to upload as it is, a small dataset per family that trains in
seconds on a laptop CPU, and one input per family to send to the trained model.

The data is made so that a tiny model learns it in a few epochs: image classes are bright squares in one
of four corners, detection scenes hold red and green squares, captions describe drawn shapes, the
translation pairs are a word-for-word number language (English -> French), ratings come from two tastes,
and fraud rows are shifted on two features.
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

CORNERS = ["north-west", "north-east", "south-west", "south-east"]
SQUARE_COLOURS = {"red": (255, 40, 40), "green": (40, 255, 40)}
NUMBERS = {"one": "un", "two": "deux", "three": "trois", "four": "quatre", "five": "cinq", "six": "six",
           "seven": "sept", "eight": "huit", "nine": "neuf", "ten": "dix", "eleven": "onze", "twelve": "douze"}
FRAUD_FEATURES = [f"V{i}" for i in range(1, 9)]


def tiny_classifier(classes: int = 10, seed: int = 0) -> onnx.ModelProto:
    """input float [batch, 3, 32, 32] -> logits [batch, classes]: one linear layer, random weights."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((3 * 32 * 32, classes)).astype(np.float32) * 0.01, "W")
    b = numpy_helper.from_array(np.zeros(classes, np.float32), "B")
    shape = numpy_helper.from_array(np.array([-1, 3 * 32 * 32], np.int64), "S")
    nodes = [helper.make_node("Reshape", ["input", "S"], ["flat"]),
             helper.make_node("Gemm", ["flat", "W", "B"], ["logits"])]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])], [w, b, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def corner_images(n: int, size: int = 16, seed: int = 0, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """x uint8 [n, size, size]: a bright square in corner y of a dark noisy image; y int64 [n]."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.integers(0, 40, size=(n, size, size)).astype(np.uint8)
    half = size // 2
    for i, k in enumerate(y):
        r, c = (k // 2) * half, (k % 2) * half
        x[i, r + 1:r + half - 1, c + 1:c + half - 1] = rng.integers(200, 256)
    return x, y.astype(np.int64)


def corners_zip(n: int = 80, size: int = 16, seed: int = 0) -> bytes:
    """An imagefolder archive: <corner>/<i>.png."""
    x, y = corner_images(n, size, seed)
    return zipped({f"{CORNERS[k]}/{i}.png": png(img) for i, (img, k) in enumerate(zip(x, y, strict=True))})


def square_scene(rng: np.random.Generator, h: int = 64, w: int = 64) -> tuple[np.ndarray, list, list[str]]:
    """uint8 [h, w, 3] with one or two red or green squares that do not overlap; boxes [x, y, w, h]."""
    img = np.zeros((h, w, 3), np.uint8)
    boxes: list[list[int]] = []
    names: list[str] = []
    for _ in range(int(rng.integers(1, 3))):
        for _ in range(30):
            s = int(rng.integers(14, 26) * max(h, w) / 64)
            x, y = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
            if all(x + s <= bx or bx + bs <= x or y + s <= by or by + bs <= y for bx, by, bs, _ in boxes):
                break
        else:
            continue
        name = list(SQUARE_COLOURS)[int(rng.integers(0, 2))]
        img[y:y + s, x:x + s] = SQUARE_COLOURS[name]
        boxes.append([x, y, s, s])
        names.append(name)
    return img, boxes, names


def squares_coco_zip(n: int = 72, seed: int = 0) -> bytes:
    """A COCO instances archive: annotations/instances.json and images/<i>.png."""
    rng = np.random.default_rng(seed)
    ids = {name: k + 1 for k, name in enumerate(SQUARE_COLOURS)}
    doc: dict = {"images": [], "annotations": [],
                 "categories": [{"id": i, "name": name} for name, i in ids.items()]}
    files = {}
    for i in range(n):
        img, boxes, names = square_scene(rng)
        files[f"images/{i:03d}.png"] = png(img)
        doc["images"].append({"id": i + 1, "file_name": f"{i:03d}.png", "width": 64, "height": 64})
        for box, name in zip(boxes, names, strict=True):
            doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": i + 1,
                                       "category_id": ids[name], "bbox": box, "area": box[2] * box[3],
                                       "iscrowd": 0})
    files["annotations/instances.json"] = json.dumps(doc).encode()
    return zipped(files)


def number_pairs(n: int = 300, seed: int = 0) -> list[tuple[str, str]]:
    """English number words and their French, word for word: ('three one four', 'trois un quatre')."""
    rng = random.Random(seed)
    words = list(NUMBERS)
    out = []
    for _ in range(n):
        chosen = [rng.choice(words) for _ in range(rng.randint(2, 5))]
        out.append((" ".join(chosen), " ".join(NUMBERS[w] for w in chosen)))
    return out


def ratings(users: int = 60, items: int = 40, seed: int = 0) -> list[tuple[int, int, int, int]]:
    """(user, item, rating, timestamp), ids from 1: even users love items 1-20 and dislike the rest, odd
    users the other way round; each user rates half the items."""
    rng = np.random.default_rng(seed)
    out = []
    for u in range(users):
        for i in rng.choice(items, items // 2, replace=False):
            likes = (i < items // 2) == (u % 2 == 0)
            r = int(np.clip(rng.normal(4.5 if likes else 1.5, 0.5), 1, 5).round())
            out.append((u + 1, int(i) + 1, r, 880000000 + len(out)))
    return out


def transactions_csv(n: int = 800, fraud_share: float = 0.1, seed: int = 0) -> bytes:
    """Time, V1..V8, Amount, Class: frauds are shifted on V2 and V5 and spend more."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < fraud_share).astype(int)
    x = rng.normal(size=(n, len(FRAUD_FEATURES)))
    x[y == 1, 1] += 3.0
    x[y == 1, 4] -= 3.0
    amounts = rng.gamma(2.0, 50.0, size=n) * np.where(y == 1, 4, 1)
    lines = ["Time," + ",".join(FRAUD_FEATURES) + ",Amount,Class"]
    lines += [f"{k}," + ",".join(f"{v:.5f}" for v in x[k]) + f",{amounts[k]:.2f},{y[k]}" for k in range(n)]
    return ("\n".join(lines) + "\n").encode()


def write(folder: Path) -> dict[str, Path]:
    """Writes the example files into `folder` (created if needed); returns {file name: path}."""
    from models.captioning import synthetic  # numpy and Pillow only

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    corner, _ = corner_images(4, seed=11)
    scene, _, _ = square_scene(rng)
    canvases, captions = synthetic.canvases(240, "shapes", 24, seed=0)
    canvas, _ = synthetic.canvases(1, "shapes", 24, seed=99)
    pairs = number_pairs()
    fraud_row = transactions_csv(40, fraud_share=0.5, seed=5).decode().splitlines()
    header, row = fraud_row[0].split(","), next(r for r in fraud_row[1:] if r.endswith(",1")).split(",")
    files: dict[str, bytes] = {
        "model.onnx": tiny_classifier(classes=2).SerializeToString(),
        "cat.png": png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)),
        "corners.zip": corners_zip(),
        "corner.png": png(corner[1]),
        "squares.zip": squares_coco_zip(),
        "scene.png": png(scene),
        "canvases.zip": synthetic.coco_archive(canvases, captions),
        "canvas.png": png(canvas[0]),
        "numbers.tsv": "".join(f"{en}\t{fr}\n" for en, fr in pairs).encode(),
        "ratings.csv": ("user,item,rating,timestamp\n"
                        + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in ratings())).encode(),
        "transactions.csv": transactions_csv(),
        # one row of the training file, exactly as it is there (label left out): what a client would send
        "transaction.json": json.dumps({"features": {k: float(v) for k, v in zip(header[:-1], row[:-1],
                                                                               strict=True)}}).encode(),
    }
    out = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        out[name] = folder / name
    return out
