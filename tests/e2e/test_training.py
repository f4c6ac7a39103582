"""Training as `make run` serves it: `dlserve serve` on the embedded default (SQLite, file-system broker)
starts the API and one worker process; a user uploads images, submits a job, follows its events, and
finds the version with its metrics, lineage and metadata; the CLI does the same from a shell."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from app.examples import png
from tests.live_server import free_port
from tests.workers import synthetic

pytestmark = pytest.mark.slow
KEY = "e2e-admin-key-0123456789"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLSERVE_")}
    env.update(DLSERVE_HOME=str(home / "var"), DLSERVE_ADMIN_KEY=KEY, DLSERVE_PROGRESS_INTERVAL_S="0.2")
    log = home / "serve.log"
    proc = subprocess.Popen([str(BIN / "dlserve"), "serve", "--port", str(port)], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, env=env, cwd=home, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not (_ready(base) and " ready." in log.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield base, home, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    worker_pid = int(re.search(r"dlserve-(\d+)@", log.read_text()).group(1))
    assert not _running(worker_pid), "the worker outlived `dlserve serve`"


def _running(pid: int) -> bool:
    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return False


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz").status_code == 200
    except httpx.TransportError:
        return False


def test_upload_train_follow_and_find_the_version(served):
    base, home, _ = served
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    r = api.post("/v1/datasets", files={"file": ("corners.zip", synthetic.imagefolder_zip(n=80, size=16))},
                 data={"task": "classification", "format": "imagefolder"})
    assert r.status_code == 201, r.text
    dataset = r.json()
    r = api.post("/v1/jobs", json={"task": "classification", "dataset_id": dataset["id"], "register_as": "corners",
                                   "alias": "production", "config": {"epochs": 4, "batch_size": 8, "lr": 0.01}})
    assert r.status_code == 202, r.text
    job = r.json()

    events = []
    with api.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=httpx.Timeout(60, read=120)) as stream:
        name = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: "):])))
    names = [n for n, _ in events]
    assert names[-1] == "end" and "metrics" in names
    final = events[-1][1]
    assert final["status"] == "succeeded", final["error"]
    assert final["model_version"] == {"name": "corners", "version": 1}
    running = [d for n, d in events if n == "progress" and d["status"] == "running"]
    # a worker that has claimed the job but not yet loaded its data says so; after that, steps count up
    assert all("step" in d["progress"] or d["progress"].get("phase") == "loading" for d in running)
    stepping = [d for d in running if "step" in d["progress"]]
    assert stepping and all(0 <= d["progress"]["step"] <= d["progress"]["total"] for d in stepping)
    keys = {m["key"] for n, rows in events if n == "metrics" for m in rows}
    assert {"loss", "val_accuracy", "val_loss"} <= keys

    model = api.get("/v1/models/corners").json()
    assert model["aliases"] == {"production": 1}
    version = model["versions"][0]
    assert version["run_id"] == job["id"] and version["dataset_id"] == dataset["id"]
    assert version["metrics"]["val_accuracy"] >= 0.9
    meta = version["metadata"]
    assert meta["labels"] == sorted(synthetic.LABELS) and meta["parity"]["max_abs_diff"] <= meta["parity"]["atol"]

    # the served file gives fresh images their class (labels are sorted names; synthetic.LABELS is not)
    x, y = synthetic.images(40, 16, seed=7)
    pre = meta["preprocessing"]
    feed = ((x[:, None].astype(np.float32) / 255 - pre["mean"][0]) / pre["std"][0]).astype(np.float32)
    onnx_file = home / "var/artifacts/models/corners/1/model.onnx"
    logits = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).run(None, {"input": feed})[0]
    predicted = [meta["labels"][i] for i in logits.argmax(1)]
    assert np.mean([p == synthetic.LABELS[k] for p, k in zip(predicted, y, strict=True)]) >= 0.9


def test_the_cli_uploads_trains_follows_and_lists(served, tmp_path):
    base, _, _ = served
    data = tmp_path / "corners.npz"
    data.write_bytes(synthetic.npz_bytes(n=120, size=16, seed=5))
    env = {**os.environ, "DLSERVE_URL": base, "DLSERVE_KEY": KEY}
    out = subprocess.run([str(BIN / "dlserve"), "train", "--task", "classification", "--dataset", str(data),
                          "--config", "epochs=2", "-c", "lr=0.01", "--name", "cli-corners", "--alias", "production"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "120 rows, 4 classes" in out.stdout and "succeeded" in out.stdout
    assert "model cli-corners version 1" in out.stdout and "val_accuracy" in out.stdout

    jobs = subprocess.run([str(BIN / "dlserve"), "jobs"], capture_output=True, text=True, env=env, timeout=30)
    assert jobs.returncode == 0 and "cli-corners:1" in jobs.stdout and "succeeded" in jobs.stdout
    models = subprocess.run([str(BIN / "dlserve"), "models"], capture_output=True, text=True, env=env, timeout=30)
    assert re.search(r"cli-corners\s+classification\s+1\s+1\s+production=1", models.stdout), models.stdout

    bad = subprocess.run([str(BIN / "dlserve"), "train", "--task", "classification", "--dataset", str(data),
                          "-c", "epochz=2"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 1 and "config.epochz: unknown key" in bad.stderr


def test_a_trained_classifier_is_quantised_by_the_worker_and_its_int8_version_serves_the_same_top_1(served):
    """Issue 20 on a real family with the worker process of `dlserve serve`: a classifier trained by a job is
    quantised by a job, and the int8 version, registered next to its parent, answers /predict with the
    parent's top-1 on fresh images."""
    base, _, _ = served
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    r = api.post("/v1/datasets", files={"file": ("corners.zip", synthetic.imagefolder_zip(n=80, size=16, seed=3))},
                 data={"task": "classification", "format": "imagefolder"})
    assert r.status_code == 201, r.text
    r = api.post("/v1/jobs", json={"task": "classification", "dataset_id": r.json()["id"], "alias": "production",
                                   "register_as": "int8-corners", "config": {"epochs": 4, "batch_size": 8, "lr": 0.01}})
    assert r.status_code == 202, r.text
    assert _finished(api, r.json()["id"])["status"] == "succeeded"

    r = api.post("/v1/models/int8-corners/versions/1/quantize",
                 json={"method": "auto", "calibration_batches": 4, "batch_size": 8, "alias": "int8"})
    assert r.status_code == 202, r.text
    job = _finished(api, r.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["kind"] == "quantisation" and job["model_version"] == {"name": "int8-corners", "version": 2}
    v = api.get("/v1/models/int8-corners/versions/2").json()
    lineage = v["metadata"]["quantisation"]
    assert v["quantized_from"] == 1 and v["aliases"] == ["int8"] and lineage["method"] == "static"
    parity = lineage["parity"]
    assert parity["parent"] - parity["int8"] <= parity["tolerance"] == 0.005
    assert parity["size_bytes"]["int8"] < parity["size_bytes"]["parent"]

    x, _ = synthetic.images(8, 16, seed=11)
    files = [("file", (f"{i}.png", png(img), "image/png")) for i, img in enumerate(x)]
    answers = {}
    for alias in ("production", "int8"):
        r = api.post(f"/v1/models/int8-corners/predict?alias={alias}", files=files)
        assert r.status_code == 200, r.text
        answers[alias] = r.json()
    assert answers["int8"]["version"] == 2 and answers["production"]["version"] == 1
    top1 = {alias: [o["labels"][0]["label"] for o in a["outputs"]] for alias, a in answers.items()}
    assert len(top1["int8"]) == 8 and top1["int8"] == top1["production"]


def _finished(api: httpx.Client, job_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while (job := api.get(f"/v1/jobs/{job_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    return job
