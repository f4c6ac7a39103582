"""A training run with DLSERVE_ARTIFACT_ROOT=s3://...: the API and the worker on separate folders (two hosts
sharing only the database and the bucket). The worker gets the dataset from the bucket, checkpoints and
registers into it; the API serves the version through /predict from its own cache, fetched and checked."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch

from app.datasets.service import dataset_path
from app.db.session import make_engine, make_sessionmaker
from app.db.tables import Dataset
from app.examples import png
from app.store import open_store
from models.classification import training
from models.classification.config import Config
from tests.conftest import upload_dataset
from tests.store.conftest import keys_in, s3_settings
from tests.workers import synthetic
from workers.runner import run_training

# The subject is the store and the host's cache, not the database: one backend (tests/conftest.py).
pytestmark = pytest.mark.one_backend


def test_a_job_trains_from_the_bucket_and_the_api_serves_what_it_registered(api, bucket, tmp_path, database_url,
                                                                            s3_uri, one_thread):
    r = upload_dataset(api, synthetic.npz_bytes(n=160, size=16), "corners.npz", "classification")
    assert r.status_code == 201, r.text
    sha = r.json()["sha256"]
    job = api.post("/v1/jobs", json={"task": "classification", "dataset_id": r.json()["id"], "register_as": "corners",
                                     "alias": "production", "config": {"epochs": 2, "batch_size": 16, "lr": 0.01,
                                                                       "width": 8}}).json()

    worker_home = tmp_path / "worker"
    assert run_training(job["id"], s3_settings(worker_home, database_url, s3_uri)) == "succeeded"
    assert keys_in(bucket) == sorted([
        f"datasets/{sha}/upload", "models/corners/1/model.onnx", "models/corners/1/signature.json",
        f"runs/{job['id']}/checkpoints/last.pt", f"runs/{job['id']}/weights.pt"])
    assert not (tmp_path / "api" / "cache" / "artifacts" / "models" / "corners").exists()  # nothing shared

    x, y = synthetic.images(12, 16, seed=5)
    images = [png(np.repeat(img[:, :, None], 3, axis=2)) for img in x]
    r = api.post("/v1/models/corners/predict", json={"inputs": [{"image": base64.b64encode(b).decode()}
                                                                for b in images]})
    assert r.status_code == 200, r.text
    got = [int(o["labels"][0]["label"]) for o in r.json()["outputs"]]
    assert np.mean(np.asarray(got) == y) >= 0.75
    served = tmp_path / "api" / "cache" / "artifacts" / "models" / "corners" / "1" / "model.onnx"
    assert served.is_file()  # fetched into the API's own cache

    download = api.get("/v1/models/corners/versions/1/artifact")
    assert download.status_code == 200 and download.content == served.read_bytes()
    listed = api.get(f"/v1/jobs/{job['id']}/artifacts").json()["items"]
    assert {a["name"] for a in listed} == {"model.onnx", "signature.json", "weights.pt", "last.pt"}

    # deleting the version removes its objects; the run's weights and checkpoint stay with the run
    assert api.delete("/v1/models/corners/aliases/production").status_code in (200, 204)
    assert api.delete("/v1/models/corners/versions/1").status_code == 204
    assert not [k for k in keys_in(bucket) if k.startswith("models/")]


def test_a_job_resumes_on_any_worker_from_the_checkpoint_in_the_bucket(api, tmp_path, database_url, s3_uri,
                                                                      one_thread):
    r = upload_dataset(api, synthetic.npz_bytes(n=64, size=8), "corners.npz", "classification")
    job = api.post("/v1/jobs", json={"task": "classification", "dataset_id": r.json()["id"],
                                     "config": {"epochs": 3, "batch_size": 16, "width": 8}}).json()
    # a first worker, in its own folder, got through one epoch, wrote its checkpoint to the bucket and died
    first = open_store(s3_settings(tmp_path / "first", database_url, s3_uri))
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as s:
        path = dataset_path(first, s.get(Dataset, job["dataset_id"]))
    engine.dispose()
    cfg = Config(**job["config"])
    states = []
    training.train(cfg, training.load_dataset(path, "npz", cfg), "cpu", lambda *_: None,
                   checkpoint=lambda state: states.append(state) if not states else None)
    key = f"runs/{job['id']}/checkpoints/last.pt"
    first.path(key).parent.mkdir(parents=True)
    torch.save(states[0], first.path(key))
    first.publish(key)

    second = tmp_path / "second"
    assert run_training(job["id"], s3_settings(second, database_url, s3_uri)) == "succeeded"
    done = api.get(f"/v1/jobs/{job['id']}").json()
    assert done["progress"]["resumed_from"] == {"epoch": 1, "step": states[0]["step"]}
    assert not (second / "cache" / "artifacts" / "runs" / job["id"]).exists()  # the bucket keeps it, not the disk
