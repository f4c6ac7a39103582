"""Fraud training without the API: a run resumed from any epoch's checkpoint ends where the uninterrupted
run ends, for the two-phase hybrid too; every model's ONNX export agrees with PyTorch."""

import copy

import numpy as np
import onnxruntime as ort
import pytest
import torch

from models.fraud import data as D
from models.fraud import training as T
from models.fraud.config import Config


def table(n: int = 300) -> D.Table:
    rng = np.random.default_rng(0)
    y = (rng.random(n) < 0.15).astype(np.int64)
    x = rng.normal(size=(n, 5))
    x[y == 1, 0] += 3
    x[:, 4] = np.abs(x[:, 4]) * 100  # an amount
    return D.Table(["V1", "V2", "V3", "V4", "Amount"], x, y, "Class")


def test_a_resumed_hybrid_run_ends_where_the_uninterrupted_one_does():
    cfg = Config(arch="hybrid", epochs=3, batch_size=32)
    data = T.prepare(cfg, table())
    states = []
    # the worker writes each checkpoint to disk; a copy stands for that here
    full, _ = T.train(cfg, data, "cpu", lambda s, m: None, checkpoint=lambda st: states.append(copy.deepcopy(st)))
    assert len(states) == 6  # 3 autoencoder epochs, then 3 classifier epochs
    for state in (states[1], states[3]):
        resumed, _ = T.train(cfg, data, "cpu", lambda s, m: None, resume=state)
        for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
            assert torch.equal(a, b), k


@pytest.mark.parametrize("arch", ["autoencoder", "deep_autoencoder", "denoising_autoencoder",
                                  "contractive_autoencoder", "mlp", "hybrid"])
def test_every_model_exports_and_agrees_with_pytorch(tmp_path, arch):
    cfg = Config(arch=arch, epochs=1, batch_size=64)
    data = T.prepare(cfg, table())
    model, _ = T.train(cfg, data, "cpu", lambda s, m: None)
    metrics = T.evaluate(model, data, "cpu")
    assert {"roc_auc", "pr_auc", "precision", "recall", "confusion_matrix", "threshold"} <= set(metrics)
    T.export_onnx(model, tmp_path / "m.onnx", data)
    feeds = T.example_inputs(data, 16)
    got = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(feeds["features"])).numpy()
    assert got.shape == (16, 1 + 5)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)
    assert metadata_ok(T.version_metadata(cfg, data))


def metadata_ok(meta: dict) -> bool:
    return meta["features"] == ["V1", "V2", "V3", "V4", "Amount"] and meta["threshold"] is not None
