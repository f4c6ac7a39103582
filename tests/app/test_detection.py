"""Object detection through the real API (upload, job run in this process by the worker's code, registry,
/predict) on tiny generated data: coloured squares on black, red is "red" and green is "green"."""

from __future__ import annotations

import base64
import json
import warnings

import numpy as np
import onnx
import pytest
import torch

from app.examples import SQUARE_COLOURS, png, square_scene
from tests.conftest import assert_problem, upload, upload_dataset
from tests.workers.synthetic import stored_zip as zipped
from tests.workers.synthetic import tar_gz
from workers.runner import run_training

# The subject is the family, the CLI or the job's checks, not the database: one backend (tests/conftest.py).
pytestmark = pytest.mark.one_backend

LABELS = ["red", "green"]
COLOURS = [SQUARE_COLOURS[name] for name in LABELS]
EASY = {"epochs": 20, "batch_size": 16, "lr": 0.01, "width": 8, "image_size": 64, "warmup_steps": 10,
        "val_fraction": 0.25}
SHAPES = [(64, 64), (48, 96), (96, 64), (64, 128)]  # (h, w): letterboxing pads most of them


def scene(rng, h: int = 64, w: int = 64):
    """uint8 [h, w, 3] with 1-2 squares (not overlapping); boxes [[x, y, bw, bh]], class ids (LABELS' order)."""
    img, boxes, names = square_scene(rng, h, w)
    return img, boxes, [LABELS.index(name) for name in names]


def coco_files(n: int = 64, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    doc = {"images": [], "annotations": [], "categories": [{"id": 7, "name": "red"}, {"id": 9, "name": "green"}]}
    files = {}
    for i in range(n):
        h, w = SHAPES[i % len(SHAPES)]
        img, boxes, classes = scene(rng, h, w)
        files[f"images/{i:03d}.png"] = png(img)
        doc["images"].append({"id": i + 1, "file_name": f"{i:03d}.png", "width": w, "height": h})
        for b, c in zip(boxes, classes, strict=True):
            doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": i + 1, "category_id": [7, 9][c],
                                       "bbox": b, "area": b[2] * b[3], "iscrowd": 0})
    files["annotations/instances.json"] = json.dumps(doc).encode()
    return files


def yolo_files(n: int = 12, seed: int = 1) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    files = {"data.yaml": b"path: .\ntrain: images/train\nval: images/val\nnames:\n  0: red\n  1: green\n"}
    for i in range(n):
        split = "val" if i % 4 == 0 else "train"
        img, boxes, classes = scene(rng, 48, 80)
        files[f"images/{split}/{i:03d}.png"] = png(img)
        files[f"labels/{split}/{i:03d}.txt"] = "".join(
            f"{c} {(x + s / 2) / 80:.6f} {(y + s / 2) / 48:.6f} {s / 80:.6f} {s / 48:.6f}\n"
            for (x, y, s, _), c in zip(boxes, classes, strict=True)).encode()
    return files


def post_dataset(client, content: bytes, fmt: str, filename: str = "d.zip"):
    return upload_dataset(client, content, filename, "detection", fmt)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_uploads_of_both_formats_give_their_statistics(client):
    r = post_dataset(client, zipped(coco_files(8)), "coco")
    assert r.status_code == 201, r.text
    stats = r.json()["stats"]
    assert stats["images"] == 8 and stats["categories"] == 2 and stats["labels"] == LABELS and stats["boxes"] >= 8
    r = post_dataset(client, tar_gz(yolo_files()), "yolo", "y.tar.gz")
    assert r.status_code == 201, r.text
    stats = r.json()["stats"]
    assert stats["images"] == 12 and stats["train_images"] == 9 and stats["val_images"] == 3
    assert stats["labels"] == LABELS
    assert_problem(post_dataset(client, zipped(coco_files(2)), "voc"), 422, "not a detection format")


def _corrupt(files: dict[str, bytes], key: str) -> dict[str, bytes]:
    return {**files, key: b"\x89PNG\r\n\x1a\n not really"}


def _coco_edit(edit) -> dict[str, bytes]:
    files = coco_files(4)
    doc = json.loads(files["annotations/instances.json"])
    edit(doc)
    return {**files, "annotations/instances.json": json.dumps(doc).encode()}


def _first_ann(doc, **changes):
    doc["annotations"][0].update(changes)


@pytest.mark.parametrize("fmt, files, needles", [
    ("coco", lambda: _coco_edit(lambda d: d["images"][1].update(file_name="nowhere.png")),
     ["annotations/instances.json: images[1]", "'nowhere.png'", "not in the archive"]),
    ("coco", lambda: _coco_edit(lambda d: _first_ann(d, bbox=[50, 50, 30, 10])),
     ["annotations/instances.json: annotations[0] (id 1) on images/000.png", "outside its image"]),
    ("coco", lambda: _coco_edit(lambda d: _first_ann(d, category_id=3)),
     ["annotations/instances.json: annotations[0] (id 1)", "unknown category id 3"]),
    ("coco", lambda: _corrupt(coco_files(4), "images/002.png"), ["images/002.png", "not a decodable image"]),
    ("yolo", lambda: {**yolo_files(), "labels/train/999.txt": b"0 0.5 0.5 0.1 0.1\n"},
     ["labels/train/999.txt", "no image"]),
    ("yolo", lambda: {**yolo_files(), "labels/train/001.txt": b"1 0.95 0.5 0.2 0.1\n"},
     ["labels/train/001.txt: line 1", "outside its image"]),
    ("yolo", lambda: {**yolo_files(), "labels/train/001.txt": b"0 0.5 0.5 0.1 0.1\n5 0.5 0.5 0.1 0.1\n"},
     ["labels/train/001.txt: line 2", "unknown category id 5"]),
    ("yolo", lambda: _corrupt(yolo_files(), "images/val/004.png"), ["images/val/004.png", "not a decodable image"]),
])
def test_bad_records_are_422_naming_the_entry(client, fmt, files, needles):
    body = assert_problem(post_dataset(client, zipped(files()), fmt), 422, *needles)
    assert body.get("entry"), body


@pytest.fixture
def trained(client, settings, one_thread):
    r = post_dataset(client, zipped(coco_files(72)), "coco")
    assert r.status_code == 201, r.text
    r = client.post("/v1/jobs", json={"task": "detection", "dataset_id": r.json()["id"], "config": EASY,
                                      "register_as": "squares", "alias": "production"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert run_training(job["id"], settings) == "succeeded", client.get(f"/v1/jobs/{job['id']}").json()["error"]
    return client.get(f"/v1/jobs/{job['id']}").json()


def test_a_trained_detector_beats_chance_and_serves_boxes_in_the_original_pixels(client, trained):
    metrics = trained["metrics"]
    # chance is ~0: a box must land on a square with the right colour
    assert metrics["val_map_50"] >= 0.6 and metrics["val_map"] >= 0.25, metrics
    version = client.get("/v1/models/squares/versions/1").json()
    meta = version["metadata"]
    assert meta["layout"] == "dlserve" and meta["labels"] == LABELS and meta["preprocessing"]["size"] == [64, 64]
    assert meta["parity"]["max_abs_diff"] <= 1e-3  # ONNX Runtime agreed with PyTorch on a held batch
    assert version["metrics"]["val_map_50"] == metrics["val_map_50"]

    # a 160x80 image (letterboxed to 64x64: scale 0.4, padded 16 rows above and below) with a known square
    img = np.zeros((80, 160, 3), np.uint8)
    img[20:65, 90:135] = COLOURS[1]  # green, x 90-135, y 20-65 in the original's pixels
    r = client.post("/v1/models/squares/predict", json={
        "inputs": [{"image": base64.b64encode(png(img)).decode()}], "parameters": {"score_threshold": 0.3}})
    assert r.status_code == 200, r.text
    dets = r.json()["outputs"][0]["detections"]
    assert dets and dets[0]["label"] == "green", dets
    assert iou(dets[0]["box"], [90, 20, 135, 65]) >= 0.6, dets

    r = client.post("/v1/models/squares/predict", files={"file": ("x.png", png(img))})
    assert r.status_code == 200 and r.json()["outputs"][0]["detections"][0]["label"] == "green"
    r = client.post("/v1/models/squares/predict", json={"inputs": [{"image": base64.b64encode(png(img)).decode()}],
                                                        "parameters": {"max_detections": 0}})
    assert_problem(r, 422, "max_detections")


class YoloV8Like(torch.nn.Module):
    """Ignores its input (except for the batch size) and answers fixed candidates in the YOLOv8 layout
    [N, 4 + C, A]: cx, cy, w, h in the 64x64 input's pixels, then C class scores."""

    def __init__(self):
        super().__init__()
        pred = torch.tensor([  # cx, cy, w, h, score of "cat", score of "dog"
            [32, 32, 20, 10, 0.05, 0.90],  # a dog
            [33, 32, 20, 10, 0.04, 0.80],  # the same dog again: suppressed
            [10, 30, 8, 8, 0.70, 0.10],  # a cat
            [50, 40, 6, 6, 0.10, 0.15],  # under the threshold
        ], dtype=torch.float32)
        self.register_buffer("pred", pred.T.unsqueeze(0))  # [1, 6, 4]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pred.expand(images.shape[0], -1, -1) + images.mean() * 0


def yolov8_onnx(tmp_path) -> bytes:
    path = tmp_path / "y8.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(YoloV8Like(), (torch.zeros(1, 3, 64, 64),), str(path), input_names=["images"],
                          output_names=["output0"], dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
                          opset_version=17, dynamo=False)
    onnx.checker.check_model(str(path))
    return path.read_bytes()


def test_an_uploaded_yolov8_layout_detector_serves(client, tmp_path):
    upload(client, "y8", yolov8_onnx(tmp_path), task="detection",
           metadata=json.dumps({"layout": "yolov8", "labels": ["cat", "dog"]}))
    assert client.put("/v1/models/y8/aliases/production", json={"version": 1}).status_code == 200
    img = np.zeros((64, 128, 3), np.uint8)  # letterboxed to 64x64: scale 0.5, 16 rows of padding above
    r = client.post("/v1/models/y8/predict", json={"inputs": [{"image": base64.b64encode(png(img)).decode()}]})
    assert r.status_code == 200, r.text
    dets = r.json()["outputs"][0]["detections"]
    assert [d["label"] for d in dets] == ["dog", "cat"]
    assert dets[0]["box"] == [44.0, 22.0, 84.0, 42.0] and dets[0]["score"] == pytest.approx(0.9)
    assert dets[1]["box"] == [12.0, 20.0, 28.0, 36.0]
    r = client.post("/v1/models/y8/predict", json={"inputs": [{"image": base64.b64encode(png(img)).decode()}],
                                                  "parameters": {"max_detections": 1, "iou_threshold": 0.99}})
    assert [d["label"] for d in r.json()["outputs"][0]["detections"]] == ["dog"]
    r = client.post("/v1/models/y8/predict", json={"inputs": [{"image": base64.b64encode(png(img)).decode()}],
                                                  "parameters": {"score_threshold": 0.1, "iou_threshold": 0.99}})
    assert len(r.json()["outputs"][0]["detections"]) == 4  # the duplicate is kept at IoU 0.99, 0.15 passes 0.1
    assert_problem(client.post("/v1/models/y8/predict", json={"inputs": [{"image": "bm90IGFuIGltYWdl"}]}), 422,
                   "inputs[0].image")
    assert_problem(client.post("/v1/models/y8/predict", json={"inputs": [{"image": "x"}], "parameters": {"top_k": 1}}),
                   422, "unknown option")
