"""The proof that a family is one folder plus its registration: the toy regression family of this folder,
registered through DLSERVE_FAMILIES only (no edit of app/ or workers/, no patching), is trained through
the job API by a real worker process and served through /v1 predict and V2 infer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import models
from app.db import migrate
from app.main import create_app
from app.settings import Settings
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.slow
TOY = "regression=tests.toyfamily"
WEIGHTS, BIAS = np.array([2.0, -1.0, 0.5]), 3.0


def _csv(n: int = 200, seed: int = 0) -> bytes:
    x = np.random.default_rng(seed).normal(size=(n, 3))
    table = np.column_stack([x, x @ WEIGHTS + BIAS])
    return ("x1,x2,x3,y\n" + "".join(",".join(f"{v:.6f}" for v in row) + "\n" for row in table)).encode()


@pytest.fixture
def stack(tmp_path):
    settings = Settings(home=tmp_path, queue=f"training-{uuid.uuid4().hex[:8]}", admin_key=ADMIN_KEY,
                        heartbeat_interval_s=0.5, progress_interval_s=0.1, reaper_interval_s=0, families=TOY,
                        _env_file=None)
    migrate.upgrade(settings.resolved_database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLSERVE_")}
    env.update(DLSERVE_HOME=str(tmp_path), DLSERVE_QUEUE=settings.queue, DLSERVE_FAMILIES=TOY,
               DLSERVE_HEARTBEAT_INTERVAL_S="0.5", DLSERVE_PROGRESS_INTERVAL_S="0.1")
    log = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--loglevel", "info"], env=env,
                              stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
            deadline = time.monotonic() + 60
            while "ready." not in log.read_text():
                assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            yield client, log
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        for task, _ in models.parse(TOY):  # this process's registry goes back to the built-in families
            models.unregister(task)


def trains_lines(client, log: Path) -> None:
    """Through the API (a TestClient or an httpx.Client): the task is listed, a dataset uploads, a job trains
    it into 'lines' (alias production) on the real worker that writes `log`."""
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert "regression" in schema["JobIn"]["properties"]["task"]["enum"]
    r = client.post("/v1/datasets", files={"file": ("lines.csv", _csv())}, data={"task": "regression"})
    assert r.status_code in (200, 201), r.text
    assert r.json()["stats"]["rows"] == 200
    r = client.post("/v1/jobs", json={"task": "regression", "dataset_id": r.json()["id"], "register_as": "lines",
                                      "alias": "production", "config": {"epochs": 30, "lr": 0.1}})
    assert r.status_code == 202, r.text
    job_id, deadline = r.json()["id"], time.monotonic() + 120
    while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"{job['status']} {job.get('progress')}\n{log.read_text()[-3000:]}"
        time.sleep(0.1)
    assert job["status"] == "succeeded", f"{job.get('error')}\n{log.read_text()[-3000:]}"


def test_a_family_registered_by_setting_trains_on_a_worker_and_serves(stack):
    client, log = stack
    trains_lines(client, log)
    # the version's metrics: what the family declares, and what the worker adds to every family's
    metrics = client.get("/v1/models/lines/versions/1").json()["metrics"]
    assert set(metrics) == set(models.family("regression").metrics) | {"train_seconds", "train_samples_per_s"}

    x = np.array([[1.0, 2.0, -4.0], [0.0, 0.0, 0.0]])
    want = x @ WEIGHTS + BIAS
    r = client.post("/v1/models/lines/predict", json={"inputs": [{"features": row} for row in x.tolist()]})
    assert r.status_code == 200, r.text
    assert np.allclose([o["value"] for o in r.json()["outputs"]], want, atol=0.1)
    r = client.post("/v1/models/lines/predict", json={"inputs": [{"features": [1.0, "two", 3.0]}]})
    assert r.status_code == 422 and "inputs[0].features[1]" in r.text

    r = client.post("/v2/models/lines/infer", json={"inputs": [
        {"name": "features", "shape": [2, 3], "datatype": "FP32", "data": x.reshape(-1).tolist()}]})
    assert r.status_code == 200, r.text
    assert np.allclose(r.json()["outputs"][0]["data"], want, atol=0.1)


def test_a_bad_families_setting_stops_start_up_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLSERVE_")}
    for value, says in (("regression", "is not task=python.package"),
                        ("regression=tests.nosuchfamily", "cannot be imported"),
                        ("fraud=tests.toyfamily", "already served by models.fraud"),
                        ("linear=tests.toyfamily", "its FAMILY says task 'regression'")):
        out = subprocess.run([sys.executable, "-m", "app.cli", "worker"], capture_output=True, text=True, timeout=60,
                             env={**env, "DLSERVE_HOME": str(tmp_path), "DLSERVE_FAMILIES": value})
        assert out.returncode == 1, out.stderr
        line = out.stderr.strip()
        assert "\n" not in line and "DLSERVE_FAMILIES" in line and says in line, line
