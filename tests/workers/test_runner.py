"""The training task body, run in this process against the real database, artifact store and ONNX
Runtime: what a finished run leaves behind, resuming, cancelling, duplicates, and failures."""

import os
import subprocess
import threading

import numpy as np
import onnxruntime as ort
import pytest
import torch

from app.db.base import utcnow
from app.db.session import make_engine, make_sessionmaker
from app.db.tables import TrainingRun
from tests.workers import synthetic
from workers.lease import worker_id
from workers.runner import _Run, run_training

EASY = {"epochs": 3, "batch_size": 16, "lr": 0.01, "width": 8}


@pytest.fixture
def submit(client):
    def submit(content=None, filename="corners.npz", **body):
        r = client.post("/v1/datasets", files={"file": (filename, content or synthetic.npz_bytes(n=160, size=16))},
                        data={"task": "classification"})
        assert r.status_code in (200, 201), r.text
        r = client.post("/v1/jobs", json={"task": "classification", "dataset_id": r.json()["id"], **body})
        assert r.status_code == 202, r.text
        return r.json()

    return submit


@pytest.fixture
def sessions(settings):
    engine = make_engine(settings.resolved_database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.mark.one_backend  # a run's training and its checkpoint; the claim and lease tests run on both
def test_a_run_registers_a_version_that_onnx_runtime_serves_correctly(client, settings, submit):
    job = submit(config=EASY, register_as="corners", alias="production")
    assert run_training(job["id"], settings) == "succeeded"

    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "succeeded" and done["error"] is None and done["attempts"] == 1
    assert done["model_version"] == {"name": "corners", "version": 1}
    assert done["progress"]["step"] == done["progress"]["total"] == 3 * 9  # 144 training images / 16
    assert done["progress"]["phase"] == "done" and done["metrics"]["val_accuracy"] >= 0.9

    version = client.get("/v1/models/corners/versions/1").json()
    assert version["run_id"] == job["id"] and version["dataset_id"] == job["dataset_id"]
    assert version["aliases"] == ["production"]
    history = client.get("/v1/models/corners/aliases/production/history").json()["items"]
    assert [(e["from_version"], e["to_version"], e["actor"]) for e in history] == [(None, 1, f"job {job['id']}")]
    assert version["metrics"]["val_accuracy"] >= 0.9 and "val_loss" in version["metrics"]
    meta = version["metadata"]
    assert meta["labels"] == ["0", "1", "2", "3"] and meta["config"]["lr"] == 0.01
    assert meta["preprocessing"]["size"] == [16, 16] and meta["preprocessing"]["channels"] == 1
    assert meta["parity"]["max_abs_diff"] <= meta["parity"]["atol"] == settings.parity_atol
    assert meta["dataset"]["id"] == job["dataset_id"]
    assert version["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 16, 16]}]

    history = client.get(f"/v1/jobs/{job['id']}/metrics", params={"key": "loss"}).json()["items"]
    assert [m["step"] for m in history] == list(range(1, 28))

    # fresh images, preprocessed the way the metadata says, get their right class from the ONNX file
    x, y = synthetic.images(40, 16, seed=99)
    pre = meta["preprocessing"]
    batch = ((x[:, None].astype(np.float32) / 255.0 - pre["mean"][0]) / pre["std"][0]).astype(np.float32)
    onnx_file = settings.resolved_artifact_root / "models/corners/1/model.onnx"
    logits = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).run(None, {"input": batch})[0]
    assert (logits.argmax(1) == y).mean() >= 0.9
    assert (settings.resolved_artifact_root / f"runs/{job['id']}/checkpoints/last.pt").exists()


def test_train_threads_sets_torchs_threads_for_the_run_and_the_job_says_so(client, settings, submit):
    before = torch.get_num_threads()
    want = 2 if before == 1 else 1  # something other than what this process runs with
    job = submit(config={**EASY, "epochs": 1})
    try:
        assert run_training(job["id"], settings.model_copy(update={"train_threads": want})) == "succeeded"
        assert torch.get_num_threads() == want
    finally:
        torch.set_num_threads(before)
    assert client.get(f"/v1/jobs/{job['id']}").json()["progress"]["threads"] == want


@pytest.mark.one_backend  # a run's training and its checkpoint; the claim and lease tests run on both
def test_a_redelivered_run_resumes_from_its_checkpoint(client, settings, submit, sessions):
    job = submit(config=EASY, register_as="corners")
    # a first attempt that got through one epoch and died: its checkpoint, its row still "running"
    from models.classification import training
    from models.classification.config import Config

    cfg = Config(**job["config"])
    folder = settings.resolved_artifact_root / f"runs/{job['id']}/checkpoints"
    folder.mkdir(parents=True)
    states = []
    data = training.load_dataset(settings.resolved_artifact_root / f"datasets/{_sha(client, job)}/data.npz",
                                 "npz", cfg)
    training.train(Config(**{**job["config"], "epochs": 3}), data, "cpu", lambda *_: None,
                   checkpoint=lambda s: states.append(s) if not states else None)
    torch.save(states[0], folder / "last.pt")
    dead = subprocess.Popen(["true"])
    dead.wait()
    with sessions() as s:
        run = s.get(TrainingRun, job["id"])
        run.status, run.worker, run.attempts = "running", f"{worker_id().split(':')[0]}:{dead.pid}", 1
        s.commit()

    assert run_training(job["id"], settings) == "succeeded"
    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert done["attempts"] == 2 and done["progress"]["resumed_from"] == {"epoch": 1, "step": 9}
    steps = [m["step"] for m in client.get(f"/v1/jobs/{job['id']}/metrics", params={"key": "loss"}).json()["items"]]
    assert steps == list(range(10, 28))  # only what this attempt trained; nothing repeated


class Died(BaseException):
    """The worker process killed right after it kept a checkpoint (nothing of it runs on)."""


@pytest.mark.one_backend
def test_a_worker_killed_right_after_a_checkpoint_loses_no_metric(client, settings, submit, sessions, monkeypatch):
    job = submit(config=EASY)
    keep = _Run._save_checkpoint

    def keep_then_die(self, state, report):
        keep(self, state, report)
        raise Died

    monkeypatch.setattr(_Run, "_save_checkpoint", keep_then_die)
    with pytest.raises(Died):  # an hour between flushes: only the checkpoint's own flush can write them
        run_training(job["id"], settings.model_copy(update={"progress_interval_s": 3600}))
    monkeypatch.undo()
    dead = subprocess.Popen(["true"])
    dead.wait()
    with sessions() as s:
        s.get(TrainingRun, job["id"]).worker = f"{worker_id().split(':')[0]}:{dead.pid}"
        s.commit()

    assert run_training(job["id"], settings) == "succeeded"
    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert done["attempts"] == 2 and done["progress"]["resumed_from"] == {"epoch": 1, "step": 9}
    steps = [m["step"] for m in client.get(f"/v1/jobs/{job['id']}/metrics", params={"key": "loss"}).json()["items"]]
    assert steps == list(range(1, 28))  # the first attempt's 9 steps are there, and each step once


def _sha(client, job):
    return client.get(f"/v1/datasets/{job['dataset_id']}").json()["sha256"]


def test_a_duplicate_delivery_leaves_a_live_run_alone_and_takes_over_a_silent_one(settings, submit, sessions):
    settings.heartbeat_interval_s = 0.2
    job = submit(config=EASY)
    live = f"{worker_id().split(':')[0]}:{os.getppid()}"  # a process that exists: our parent
    with sessions() as s:
        run = s.get(TrainingRun, job["id"])
        run.status, run.worker, run.attempts, run.heartbeat_at = "running", live, 1, utcnow()
        s.commit()

    stop = threading.Event()

    def beat():  # the other worker, alive: its heartbeat moves
        while not stop.wait(0.1):
            with sessions() as s:
                s.get(TrainingRun, job["id"]).heartbeat_at = utcnow()
                s.commit()

    beating = threading.Thread(target=beat)
    beating.start()
    try:
        assert run_training(job["id"], settings) == "skipped"
    finally:
        stop.set()
        beating.join()
    with sessions() as s:
        assert s.get(TrainingRun, job["id"]).attempts == 1

    # the same process, but its heartbeat has stopped: the run is taken over and finishes
    assert run_training(job["id"], settings) == "succeeded"
    with sessions() as s:
        assert s.get(TrainingRun, job["id"]).attempts == 2


def test_cancel_requested_before_start_and_finished_runs_are_not_trained(client, settings, submit, sessions):
    job = submit(config=EASY)
    with sessions() as s:
        s.get(TrainingRun, job["id"]).cancel_requested = True
        s.commit()
    assert run_training(job["id"], settings) == "skipped"
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
    assert run_training(job["id"], settings) == "skipped"


def test_a_run_beyond_its_attempts_is_failed(client, settings, submit, sessions):
    job = submit(config=EASY)
    with sessions() as s:
        s.get(TrainingRun, job["id"]).attempts = settings.max_attempts
        s.commit()
    assert run_training(job["id"], settings) == "skipped"
    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "failed" and "started 3 times" in done["error"]


def test_parity_beyond_the_tolerance_fails_the_run_with_the_reason(client, settings, submit):
    settings.parity_atol = settings.parity_rtol = 0.0
    job = submit(config={**EASY, "epochs": 1}, register_as="strict")
    assert run_training(job["id"], settings) == "failed"
    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert "ONNX Runtime and PyTorch disagree" in done["error"] and "atol 0" in done["error"]
    assert client.get("/v1/models/strict").status_code == 404
    assert list((settings.resolved_artifact_root / ".staging").glob("run-*")) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_it_fails_the_run_with_a_message(client, settings, submit):
    job = submit(config=EASY)
    settings.device = "cuda"
    assert run_training(job["id"], settings) == "failed"
    error = client.get(f"/v1/jobs/{job['id']}").json()["error"]
    assert "DLSERVE_DEVICE=cuda but this worker sees no CUDA device" in error
