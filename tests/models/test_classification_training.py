"""The classification family's training side on generated data: loading at one size, learning,
resuming bit for bit from a checkpoint, and an ONNX export with a dynamic batch axis."""

import copy

import numpy as np
import onnxruntime as ort
import torch

from models.classification import data, training
from models.classification.config import Config
from tests.workers import synthetic


def _folder(tmp_path, sizes):
    for i, (h, w, mode) in enumerate(sizes):
        folder = tmp_path / ("a" if i % 2 else "b")
        folder.mkdir(exist_ok=True)
        shape = (h, w, 3) if mode == "RGB" else (h, w)
        (folder / f"{i}.png").write_bytes(synthetic.png(np.full(shape, 40 * i, np.uint8)))
    return tmp_path


def test_imagefolder_loads_at_the_most_common_size_or_the_one_asked(tmp_path):
    root = _folder(tmp_path, [(10, 10, "L"), (10, 10, "L"), (6, 8, "RGB")])
    loaded = data.load(root, "imagefolder")
    assert loaded.labels == ["a", "b"] and loaded.train.x.shape == (3, 10, 10, 3)  # one colour image: 3 channels
    assert loaded.train.y.tolist() == [0, 1, 1]  # a/1.png, b/0.png, b/2.png
    grey = data.load(root, "imagefolder", size=(8, 8), channels=1)
    assert grey.train.x.shape == (3, 8, 8, 1) and grey.train.x.dtype == np.uint8


def test_training_learns_resumes_exactly_and_exports(tmp_path):
    (tmp_path / "d.npz").write_bytes(synthetic.npz_bytes(n=120, size=12))
    cfg = Config(epochs=3, batch_size=16, lr=0.01, width=8)
    prepared = training.load_dataset(tmp_path / "d.npz", "npz", cfg)
    assert len(prepared.val.y) == 12 and len(prepared.train.y) == 108 and prepared.size == (12, 12)

    steps, states = [], []
    model, metrics = training.train(cfg, prepared, "cpu", lambda step, m: steps.append((step, m)),
                                    checkpoint=lambda s: states.append(copy.deepcopy(s)))
    assert [s for s, m in steps if "loss" in m] == list(range(1, training.total_steps(cfg, prepared) + 1))
    assert [s["epoch"] for s in states] == [1, 2, 3] and metrics["val_accuracy"] >= 0.9
    assert training.evaluate(model, prepared, "cpu")["accuracy"] == metrics["val_accuracy"]

    resumed, _ = training.train(cfg, prepared, "cpu", lambda *_: None, resume=states[0])
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    path = tmp_path / "m.onnx"
    training.export_onnx(model, path, prepared)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"] and session.get_outputs()[0].name == "logits"
    for n in (1, 5):
        feed = training.example_inputs(prepared, n)
        assert session.run(None, feed)[0].shape == (n, 4)
    meta = training.version_metadata(cfg, prepared)
    assert meta["preprocessing"]["size"] == [12, 12] and meta["preprocessing"]["channels"] == 1
    assert meta["labels"] == ["0", "1", "2", "3"]
