"""The fraud family through the real API: uploads and their 422s, a training run in this process against
the real database, artifact store and ONNX Runtime, and /predict with its 422s."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.conftest import assert_item_error, assert_problem, upload_dataset
from workers.runner import run_training

# The subject is the family, the CLI or the job's checks, not the database: one backend (tests/conftest.py).
pytestmark = pytest.mark.one_backend

FEATURES = [f"V{i}" for i in range(1, 9)]


def transactions(n: int = 800, fraud_share: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x [n, 8] (V1..V8), y [n]: frauds are shifted on V2 and V5 and have larger amounts."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < fraud_share).astype(int)
    x = rng.normal(size=(n, 8))
    x[y == 1, 1] += 3.0
    x[y == 1, 4] -= 3.0
    return x, y


def csv_bytes(n: int = 800, seed: int = 0) -> bytes:
    x, y = transactions(n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    out = io.StringIO()
    out.write("Time," + ",".join(FEATURES) + ",Amount,Class\n")
    for k in range(n):
        amount = rng.gamma(2.0, 50.0) * (4 if y[k] else 1)
        out.write(f"{k}," + ",".join(f"{v:.5f}" for v in x[k]) + f",{amount:.2f},{y[k]}\n")
    return out.getvalue().encode()


def upload(client, content: bytes, name: str = "tx.csv"):
    return upload_dataset(client, content, name, "fraud")


@pytest.mark.parametrize("content, needles", [
    (b"", ["line 1", "empty"]),
    (b"V1,V2,Amount\n1,2,3\n", ["line 1", "no label column"]),
    (b"V1,V2,Class\n1,2,0\n1,x2,1\n", ["line 3", "column 'V2'", "'x2' is not a number"]),
    (b"V1,V2,Class\n1,2,0\n1,2,7\n", ["line 3", "neither 0 nor 1"]),
    (b"V1,V2,Class\n1,2,0\n1,2\n", ["line 3", "2 fields"]),
    (b"V1,V2,Class\n1,2,0\n3,4,0\n", ["only 0s"]),
])
def test_bad_uploads_are_422_naming_the_line(client, content, needles):
    assert_problem(upload(client, content), 422, *needles)


def test_an_upload_reports_its_schema(client):
    r = upload(client, csv_bytes(100))
    assert r.status_code == 201, r.text
    stats = r.json()["stats"]
    assert stats["rows"] == 100 and stats["label_column"] == "Class"
    assert stats["columns"] == ["Time", *FEATURES, "Amount"]


def _train(client, settings, config: dict, name: str) -> dict:
    ds = upload(client, csv_bytes())
    assert ds.status_code in (200, 201), ds.text
    job = client.post("/v1/jobs", json={"task": "fraud", "dataset_id": ds.json()["id"], "config": config,
                                        "register_as": name, "alias": "production"})
    assert job.status_code == 202, job.text
    assert run_training(job.json()["id"], settings) == "succeeded", client.get(f"/v1/jobs/{job.json()['id']}").json()
    return client.get(f"/v1/models/{name}/versions/1").json()


def _record(x: np.ndarray, amount: float = 80.0) -> dict:
    return {"features": {**{n: float(v) for n, v in zip(FEATURES, x, strict=True)}, "Amount": amount}}


def test_a_trained_scorer_beats_chance_and_serves_scores_with_reasons(client, settings):
    version = _train(client, settings, {"arch": "mlp", "epochs": 10, "batch_size": 64, "prevalence": 0.01}, "fraud")
    meta, metrics = version["metadata"], version["metrics"]
    assert meta["features"] == [*FEATURES, "Amount"]  # Time dropped by default
    assert meta["scaling"]["log1p"] == ["Amount"] and len(meta["scaling"]["mean"]) == 9
    assert 0 < meta["threshold"] < 1 and meta["threshold_rule"] == "best F1"
    assert meta["parity"]["max_abs_diff"] <= meta["parity"]["atol"]
    # a random score has ROC-AUC 0.5 and PR-AUC about the prevalence (0.01 here)
    assert metrics["val_roc_auc"] >= 0.95 and metrics["val_pr_auc"] >= 0.5
    assert metrics["val_pr_auc_sample"] >= metrics["val_pr_auc"]  # weighting legit rows up lowers precision
    cm = metrics["val_confusion_matrix"]
    assert cm["tp"] + cm["fn"] > 0 and cm["tn"] + cm["fp"] > 0
    assert {"val_precision", "val_recall"} <= set(metrics)

    # fresh transactions from the same process, scored by the served ONNX model
    x, y = transactions(200, seed=7)
    r = client.post("/v1/models/fraud/predict", json={"inputs": [_record(v) for v in x],
                                                      "parameters": {"top_features": 2}})
    assert r.status_code == 200, r.text
    outs = r.json()["outputs"]
    scores = np.array([o["score"] for o in outs])
    assert scores[y == 1].mean() > scores[y == 0].mean() + 0.5
    flagged = np.array([o["is_fraud"] for o in outs])
    assert (flagged == (y == 1)).mean() >= 0.9
    fraud = outs[int(np.argmax(scores))]
    assert fraud["threshold"] == meta["threshold"] and len(fraud["top_features"]) == 2
    assert {t["feature"] for t in fraud["top_features"]} & {"V2", "V5"}

    good = _record(x[0])
    # a record's own fault is answered in its place, and the good record is scored
    for features, field, needle in [
        ({k: v for k, v in good["features"].items() if k != "V3"}, "V3", "missing"),
        ({**good["features"], "V4": "abc"}, "V4", "must be a number"),
        ({**good["features"], "V4": "NaN"}, "V4", "must be a number"),
        ({**good["features"], "V4": None}, "V4", "must be a number"),
    ]:
        r = client.post("/v1/models/fraud/predict", json={"inputs": [good, {"features": features}]})
        assert_item_error(r, 1, 422, f"inputs[1].features.{field}", needle)
        assert r.json()["outputs"][0]["score"] == outs[0]["score"]
    # a feature the version does not know: the client's schema is not the version's, so the request fails
    r = client.post("/v1/models/fraud/predict", json={"inputs": [good, {"features": {**good["features"], "V99": 1}}]})
    assert_problem(r, 422, "inputs[1].features.V99", "not a feature")


@pytest.mark.parametrize("arch", ["autoencoder", "hybrid"])
def test_autoencoder_and_hybrid_scorers_train_and_serve(client, settings, arch):
    version = _train(client, settings, {"arch": arch, "epochs": 8, "batch_size": 64, "target_recall": 0.8}, arch)
    meta = version["metadata"]
    assert meta["score"] == ("reconstruction_error" if arch == "autoencoder" else "probability")
    assert meta["threshold_rule"] == "highest threshold with recall >= 0.8"
    assert version["metrics"]["val_roc_auc"] >= 0.85 and version["metrics"]["val_recall"] >= 0.8
    x, _ = transactions(3, seed=3)
    r = client.post(f"/v1/models/{arch}/predict", json={"inputs": [_record(v) for v in x]})
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert set(out) == {"score", "is_fraud", "threshold", "top_features"} and len(out["top_features"]) == 3


def test_a_row_of_the_training_file_is_scored_as_it_is_and_overflowing_numbers_are_422(client, settings):
    """Time (dropped by default) and Class (the label) are columns of the training file: accepted and not
    read. A number float32 cannot hold would have been scored as NaN ("score": null, "is_fraud": false)."""
    version = _train(client, settings, {"arch": "mlp", "epochs": 1, "batch_size": 256}, "tx")
    assert set(version["metadata"]["ignored_columns"]) == {"Time", "Class"}
    header, line = csv_bytes(5).decode().splitlines()[:2]
    row = {name: float(v) for name, v in zip(header.split(","), line.split(","), strict=True)}
    r = client.post("/v1/models/tx/predict", json={"inputs": [{"features": row}]})
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["outputs"][0]["score"], float)
    for bad in (3.5e38, -1e308):
        r = client.post("/v1/models/tx/predict",
                        json={"inputs": [{"features": row}] * 3 + [{"features": {**row, "V7": bad}}]})
        assert_item_error(r, 3, 422, "inputs[3].features.V7", "float32")
    r = client.post("/v1/models/tx/predict", json={"inputs": [{"features": {**row, "Tme": 1.0}}]})
    assert_problem(r, 422, "inputs[0].features.Tme", "not a feature")
