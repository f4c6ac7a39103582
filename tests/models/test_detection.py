"""The detection family's parts on their own: box geometry and suppression, request parameters, the
YOLO names file, the serving spec, and ONNX Runtime against PyTorch for the exported network."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from models.common.errors import InputError
from models.detection import serving
from models.detection.boxes import Letterbox, nms, select
from models.detection.config import Config
from models.detection.data import DatasetError, _names_from_yaml


def test_letterbox_round_trip_and_placement():
    lb = Letterbox.fit(80, 160, (64, 64))  # scale 0.4: 64x32, centred with 16 rows above
    assert (lb.px, lb.py) == (0, 16) and lb.sx == pytest.approx(0.4)
    img = lb.apply(np.full((80, 160, 3), 7, np.uint8), (64, 64))
    assert img.shape == (64, 64, 3) and img[0, 0, 0] == 114 and img[20, 10, 0] == 7 and img[63, 0, 0] == 114
    boxes = np.array([[10.0, 20.0, 150.0, 70.0]])
    np.testing.assert_allclose(lb.forward(boxes), [[4.0, 24.0, 60.0, 44.0]])
    np.testing.assert_allclose(lb.backward(lb.forward(boxes)), boxes)
    np.testing.assert_allclose(lb.backward(np.array([[-5.0, 0.0, 70.0, 64.0]])), [[0, 0, 160, 80]])


def test_nms_keeps_the_best_of_each_overlapping_group_per_class():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    scores = np.array([[0.9, 0.0], [0.8, 0.0], [0.7, 0.0], [0.0, 0.6]], np.float32)
    b, s, c = select(boxes, scores, score_threshold=0.5, iou_threshold=0.5, max_detections=10)
    assert s.tolist() == pytest.approx([0.9, 0.7, 0.6]) and c.tolist() == [0, 0, 1]  # other class survives
    assert select(boxes, scores, 0.5, 0.5, 1)[1].tolist() == pytest.approx([0.9])
    assert len(select(boxes, scores, 0.95, 0.5, 10)[0]) == 0
    assert nms(boxes[:2], np.array([0.1, 0.2]), 0.99, 10).tolist() == [1, 0]


def test_parameters_are_checked():
    assert serving.check_params({}) == serving.DEFAULTS
    assert serving.check_params({"score_threshold": 0, "max_detections": 3})["score_threshold"] == 0.0
    for bad in ({"score_threshold": 2}, {"iou_threshold": "x"}, {"max_detections": 0}, {"max_detections": 1.5},
                {"top_k": 3}):
        with pytest.raises(InputError):
            serving.check_params(bad)


@pytest.mark.parametrize("text", [
    "names: [red, 'green']\n", "nc: 2\nnames:\n  - red\n  - green\n", "names:\n  0: red\n  1: \"green\"\nnc: 2\n",
    "names: {0: red, 1: green}\n",
])
def test_yolo_names_in_the_usual_yaml_shapes(text):
    assert _names_from_yaml(text, "data.yaml") == ["red", "green"]
    with pytest.raises(DatasetError, match="data.yaml"):
        _names_from_yaml("nc: 2\n", "data.yaml")


def test_spec_reads_layout_and_checks_it_against_the_labels():
    sig = {"inputs": [{"name": "images", "shape": [-1, 3, 64, 64]}],
           "outputs": [{"name": "output0", "shape": [-1, 6, 84]}]}
    spec = serving.make_spec(sig, {"layout": "yolov8", "labels": ["a", "b"]})
    assert spec.size == (64, 64) and spec.layout == "yolov8" and spec.output_name == "output0"
    with pytest.raises(ValueError, match="3 class scores"):
        serving.make_spec({**sig, "outputs": [{"name": "p", "shape": [-1, 84, 7]}]}, {"labels": ["a", "b"]})
    with pytest.raises(ValueError, match="layout"):
        serving.make_spec(sig, {"layout": "ssd"})
    with pytest.raises(ValueError, match="no fixed height"):
        serving.make_spec({**sig, "inputs": [{"name": "images", "shape": [-1, 3, -1, -1]}]}, {"layout": "yolov8"})


def test_exported_detector_agrees_with_pytorch(tmp_path):
    from models.detection import training

    cfg = Config(image_size=64, width=8)
    split = training.Split(np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), np.uint8), [], [])
    data = training.Prepared(["a", "b", "c"], split, split, (64, 64))
    torch.manual_seed(0)
    model = training.build(cfg, data).eval()
    with torch.no_grad():  # BatchNorm statistics away from their initial values
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "d.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        training.export_onnx(model, path, data)
    feeds = training.example_inputs(data, 4)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    with torch.no_grad():
        want = model(torch.from_numpy(feeds["images"])).numpy()
    assert got.shape == want.shape == (4, 16 * 16, 4 + 3)
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=1e-3)
    boxes = want[..., :4]
    assert (boxes[..., 2] > boxes[..., 0]).all() and (boxes[..., 3] > boxes[..., 1]).all()


def test_the_api_side_of_the_family_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, models.detection.serving, models.detection.data, models.detection.config; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
