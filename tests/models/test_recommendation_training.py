"""The recommendation graph's pieces, without the API: the in-graph fold-in solves the same ridge
regression ALS does, and the exported graph agrees with PyTorch on every output."""

import io

import numpy as np
import onnxruntime as ort
import pytest
import torch

from models.recommendation import data as D
from models.recommendation import training as T
from models.recommendation.config import Config


def tiny() -> D.Ratings:
    rng = np.random.default_rng(0)
    u, i = np.meshgrid(np.arange(30), np.arange(25), indexing="ij")
    keep = rng.random(u.shape) < 0.6
    r = np.where((u % 2) == (i % 2), 5.0, 1.0) + rng.normal(0, 0.3, u.shape)
    return D.Ratings([str(x) for x in range(30)], [str(x) for x in range(25)], u[keep], i[keep],
                     np.clip(r[keep], 1, 5).astype(np.float32), None)


def exported_matches_pytorch(model, data, tmp_path) -> tuple[dict, list]:
    """Exports the model; ONNX Runtime's predictions and top scores agree with PyTorch's -> (feeds, outputs)."""
    path = tmp_path / "rec.onnx"
    T.export_onnx(model, path, data)
    feeds = T.example_inputs(data, 8)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    with torch.no_grad():
        want = T.Served(model, got[1].shape[1])(torch.from_numpy(feeds["user"]), torch.from_numpy(feeds["ratings"]))
    for g, w in zip(got[:2], want[:2], strict=True):
        np.testing.assert_allclose(g, w.numpy(), atol=1e-3)
    return feeds, got


def test_fold_in_matches_the_exact_als_user_step(tmp_path):
    cfg = Config(arch="mf", epochs=3, factors=4)
    data = T.prepare(cfg, tiny())
    model, _ = T.train(cfg, data, "cpu", lambda step, metrics: None)
    m = torch.from_numpy(data.matrix)
    with torch.no_grad():
        exact = T._ridge(model, m, model.q, model.bi)
        folded = model.fold_in(m)
        assert torch.allclose(folded, exact, atol=1e-3)
        # a known user and the same user folded in from the same ratings get the same predictions
        users = torch.arange(5)
        known = model(users, torch.zeros(5, m.shape[1]))
        new = model(torch.full((5,), -1), m[:5])
        assert torch.allclose(known, new, atol=1e-3)

    feeds, got = exported_matches_pytorch(model, data, tmp_path)
    # TopK never returns an item the user rated
    for row, u in enumerate(feeds["user"]):
        rated = data.seen[u] if u >= 0 else feeds["ratings"][row] > 0
        top = got[2][row][got[1][row] > -1e8]
        assert not rated[top].any()


def test_bpmf_folds_a_known_user_in_to_the_same_predictions_and_exports(tmp_path):
    cfg = Config(epochs=40, factors=3, samples=8)
    data = T.prepare(cfg, tiny())
    model, _ = T.train(cfg, data, "cpu", lambda step, metrics: None)
    assert model.items.shape[0] == 8 and model.alpha.min() > 0
    assert T.evaluate(model, data, "cpu", ranking=False)["rmse"] < 0.5 * T.evaluate(model, data, "cpu")["baseline_rmse"]
    m = torch.from_numpy(data.matrix)
    with torch.no_grad():
        # the graph's float32 CG fold-in reproduces the sampler's float64 conditional means
        assert torch.allclose(model.fold_in(m), model.users, atol=1e-3)
        known = model(torch.arange(6), torch.zeros(6, m.shape[1]))
        assert torch.allclose(known, model(torch.full((6,), -1), m[:6]), atol=1e-3)
        assert torch.allclose(known, model.predict_known(torch.arange(6)))

    exported_matches_pytorch(model, data, tmp_path)


def test_bpmf_resumed_from_a_checkpoint_ends_where_an_uninterrupted_run_does():
    cfg = Config(epochs=60, factors=3, samples=10)  # checkpoints after sweeps 25, 50 and 60
    data = T.prepare(cfg, tiny())
    saved = []

    def checkpoint(state):  # as the worker keeps it: torch.save, read back with weights_only
        buf = io.BytesIO()
        torch.save(state, buf)
        saved.append(buf.getvalue())

    whole, _ = T.train(cfg, data, "cpu", lambda step, metrics: None, checkpoint=checkpoint)
    states = [torch.load(io.BytesIO(b), weights_only=True) for b in saved]
    assert [s["epoch"] for s in states] == [25, 50, 60]
    steps = []
    resumed, _ = T.train(cfg, data, "cpu", lambda step, metrics: steps.append(step), resume=states[0])
    assert steps[0] == 26
    for name, buffer in whole.state_dict().items():
        assert torch.equal(buffer, resumed.state_dict()[name]), name


def test_config_defaults_follow_the_arch():
    assert (Config().epochs, Config().factors, Config().burn_in, Config().samples) == (600, 10, 100, 50)
    assert (Config(arch="mf").epochs, Config(arch="mf").factors) == (10, 32)
    assert (Config(epochs=12).burn_in, Config(epochs=12).samples) == (2, 10)
    with pytest.raises(ValueError, match="samples"):
        Config(epochs=20, burn_in=10, samples=11)
