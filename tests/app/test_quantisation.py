"""Quantisation jobs (issue 20) on the toy regression family (tests/toyfamily: its calibration batches, its
ONNX Runtime evaluation and its gate, val_mse at most 0.05 worse): a trained version is quantised by the
worker's code with ONNX Runtime's real tools, judged on the held-out split, and registered with its lineage
and served, or refused with the figures that refused it; and every request that cannot work is a 422 at
submit. On SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import models
import tests.toyfamily
from app.cli import cli
from app.db.tables import RunMetric, TrainingRun
from app.main import create_app
from app.settings import Settings
from tests.conftest import ADMIN_KEY, assert_problem
from tests.live_server import live_server
from tests.toyfamily.test_toy_family import TOY, WEIGHTS, _csv, stack, trains_lines  # noqa: F401 (a fixture)
from workers.runner import run_training

pytestmark = [pytest.mark.slow, pytest.mark.one_backend]


@pytest.fixture
def toy(settings, one_thread):
    toy_settings = Settings(**{**settings.model_dump(), "families": TOY, "progress_interval_s": 0.05,
                               "heartbeat_interval_s": 0.5}, _env_file=None)
    try:
        with TestClient(create_app(toy_settings), raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
            yield client, toy_settings
    finally:
        for task, _ in models.parse(TOY):
            models.unregister(task)


def _train(client, settings) -> dict:
    r = client.post("/v1/datasets", files={"file": ("lines.csv", _csv())}, data={"task": "regression"})
    assert r.status_code == 201, r.text
    r = client.post("/v1/jobs", json={"task": "regression", "dataset_id": r.json()["id"], "register_as": "lines",
                                      "alias": "production", "config": {"epochs": 30, "lr": 0.1}})
    assert r.status_code == 202, r.text
    assert run_training(r.json()["id"], settings) == "succeeded"
    return client.get("/v1/models/lines/versions/1").json()


def _quantise(client, settings, version: int = 1, **body) -> dict:
    r = client.post(f"/v1/models/lines/versions/{version}/quantize", json=body)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["kind"] == "quantisation" and job["status"] == "queued" and r.headers["location"].endswith(job["id"])
    run_training(job["id"], settings)  # what the Celery task runs: the same claim, heartbeat and release
    return client.get(f"/v1/jobs/{job['id']}").json()


def test_an_int8_version_within_the_gate_is_registered_with_its_lineage_and_served(toy):
    client, settings = toy
    parent = _train(client, settings)
    here = set(Path.cwd().iterdir())
    job = _quantise(client, settings, alias="int8", calibration_batches=4, batch_size=16)
    assert set(Path.cwd().iterdir()) == here  # ONNX Runtime's tools may write to the working folder: not here
    assert job["status"] == "succeeded", job["error"]
    assert job["model_version"] == {"name": "lines", "version": 2} and job["progress"]["fraction"] == 1

    v = client.get("/v1/models/lines/versions/2").json()
    assert v["quantized_from"] == 1 and v["aliases"] == ["int8"] and v["inputs"] == parent["inputs"]
    q = v["metadata"]["quantisation"]
    assert q["parent_version"] == 1 and q["requested"] == "auto" and q["method"] in ("static", "dynamic")
    assert {c["method"] for c in q["candidates"]} == {"static", "dynamic"}  # both measured, the fastest kept
    cal = q["calibration"]
    assert cal["split"] == "train" and cal["batches"] == 4 and cal["batch_size"] == 16 and cal["rows"] == 64
    assert cal["dataset_id"] == parent["dataset_id"]
    parity = q["parity"]
    assert parity["metric"] == "val_mse" and parity["tolerance"] == 0.05 and parity["split"] == "validation"
    assert parity["int8"] - parity["parent"] == pytest.approx(parity["delta"]) and parity["delta"] <= 0.05
    assert parity["parent"] == pytest.approx(parent["metrics"]["val_mse"], rel=1e-3, abs=1e-6)  # same rows scored
    assert parity["int8_ms_per_batch"] > 0 and parity["parent_ms_per_batch"] > 0
    assert v["metrics"]["val_mse"] == parity["int8"]
    assert v["metadata"]["features"] == parent["metadata"]["features"]  # serves like its parent
    assert "weights" not in v["metadata"] and "quantisation" not in parent["metadata"]

    folder = settings.resolved_artifact_root / "models/lines/2/model.onnx"
    ops = {n.op_type for n in onnx.load(str(folder)).graph.node}
    assert ops & {"QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger"}, ops  # int8 indeed

    x = np.array([[1.0, 2.0, -4.0], [0.0, 0.0, 0.0]])
    r = client.post("/v1/models/lines/predict?version=2", json={"inputs": [{"features": row} for row in x.tolist()]})
    assert r.status_code == 200, r.text
    assert np.allclose([o["value"] for o in r.json()["outputs"]], x @ WEIGHTS + 3.0, atol=0.3)
    r = client.post("/v2/models/lines/versions/2/infer", json={"inputs": [
        {"name": "features", "shape": [2, 3], "datatype": "FP32", "data": x.reshape(-1).tolist()}]})
    assert r.status_code == 200, r.text

    listed = client.get("/v1/jobs", params={"task": "regression"}).json()["items"]
    assert sorted(j["kind"] for j in listed) == ["quantisation", "training"]
    assert_problem(client.post("/v1/models/lines/versions/2/quantize", json={}), 422, "already an int8 version",
                   "version 1")


def test_the_gate_s_op_types_are_all_that_is_quantised(toy, monkeypatch):
    """A gate naming op types the toy's graph does not hold (its Linear is a MatMul) leaves the graph float:
    what a family keeps float (a box decoding, a score's sigmoid) is its gate's to say."""
    client, settings = toy
    _train(client, settings)
    gate = dataclasses.replace(tests.toyfamily.FAMILY.quantisation, op_types=("Conv",))
    monkeypatch.setattr(tests.toyfamily, "FAMILY", dataclasses.replace(tests.toyfamily.FAMILY, quantisation=gate))
    job = _quantise(client, settings, method="dynamic", calibration_batches=2, batch_size=8)
    assert job["status"] == "succeeded", job["error"]
    q = client.get("/v1/models/lines/versions/2").json()["metadata"]["quantisation"]
    assert q["op_types"] == ["Conv"] and q["weight_bits"] == 7 and q["parity"]["delta"] == pytest.approx(0, abs=1e-6)
    ops = {n.op_type for n in onnx.load(str(settings.resolved_artifact_root / "models/lines/2/model.onnx")).graph.node}
    assert "MatMul" in ops and not ops & {"DynamicQuantizeLinear", "MatMulInteger", "QuantizeLinear"}, ops


def test_a_gate_too_strict_fails_the_job_saying_why_and_registers_nothing(toy):
    client, settings = toy
    _train(client, settings)
    job = _quantise(client, settings, method="dynamic", tolerance=0)
    assert job["status"] == "failed" and job["model_version"] is None and job["worker"] is None
    error = job["error"]
    assert "no int8 version registered" in error and "dynamic: val_mse" in error and "tolerance 0" in error
    assert "against the fp32 parent's" in error
    assert client.get("/v1/models/lines").json()["latest_version"] == 1
    assert job["metrics"]["parent_val_mse"] >= 0 and "dynamic_val_mse" in job["metrics"]  # what was measured
    log = client.get(f"/v1/jobs/{job['id']}/log").text
    assert "dynamic int8: val_mse" in log
    running = client.get("/v1/jobs", params={"status": "running"}).json()
    assert running["total"] == 0


def test_a_job_whose_worker_vanished_is_taken_over_and_measured_again(toy):
    """A worker that died mid-job left it running, with the metrics it had written; the next delivery takes
    it over (its heartbeat does not move) and does it all again, as a training job would."""
    client, settings = toy
    _train(client, settings)
    r = client.post("/v1/models/lines/versions/1/quantize", json={"method": "dynamic"})
    job_id = r.json()["id"]
    engine = create_engine(settings.resolved_database_url)
    with Session(engine) as session:
        run = session.get(TrainingRun, job_id)
        run.status, run.worker, run.attempts = "running", "gone-host:1", 1
        run.heartbeat_at = run.started_at = datetime.now(UTC) - timedelta(minutes=5)
        session.add(RunMetric(run_id=job_id, key="parent_val_mse", step=1, value=1.0))
        session.commit()
    engine.dispose()
    assert run_training(job_id, settings) == "succeeded"
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["attempts"] == 2 and job["model_version"] == {"name": "lines", "version": 2}
    points = client.get(f"/v1/jobs/{job_id}/metrics", params={"key": "parent_val_mse"}).json()["items"]
    assert len(points) == 1 and points[0]["value"] < 0.01


def test_what_cannot_be_quantised_is_refused_at_submit(toy, monkeypatch):
    client, settings = toy
    parent = _train(client, settings)
    url = "/v1/models/lines/versions/1/quantize"
    assert_problem(client.post("/v1/models/nope/versions/1/quantize", json={}), 404, "no model named 'nope'")
    assert_problem(client.post("/v1/models/lines/versions/9/quantize", json={}), 404, "has no version 9")
    for body, needle in (({"method": "fp16"}, "method"), ({"calibration_batches": 0}, "calibration_batches"),
                         ({"calibration_batches": 1001}, "calibration_batches"), ({"batch_size": 1025}, "batch_size"),
                         ({"calibration_batches": 1000, "batch_size": 1000}, "at most 65536 rows"),
                         ({"tolerance": -1}, "tolerance"), ({"tolerance": 0.06}, "looser than the regression gate"),
                         ({"alias": "9lives"}, "alias"), ({"epochs": 3}, "epochs")):
        assert_problem(client.post(url, json=body), 422, needle)
    # an uploaded copy of the same graph: no run, no dataset to calibrate with or score on
    onnx_bytes = (settings.resolved_artifact_root / "models/lines/1/model.onnx").read_bytes()
    r = client.post("/v1/models/lines/versions", files={"file": ("model.onnx", onnx_bytes)},
                    data={"task": "regression", "metadata": '{"features": ["x1", "x2", "x3"]}'})
    assert r.status_code == 201, r.text
    assert_problem(client.post("/v1/models/lines/versions/2/quantize", json={}), 422, "not trained here")
    # a family that tries static only, and one without int8 versions
    gate = dataclasses.replace(tests.toyfamily.FAMILY.quantisation, methods=("static",))
    monkeypatch.setattr(tests.toyfamily, "FAMILY", dataclasses.replace(tests.toyfamily.FAMILY, quantisation=gate))
    assert_problem(client.post(url, json={"method": "dynamic"}), 422, "'dynamic' is not worth trying", "static")
    monkeypatch.setattr(tests.toyfamily, "FAMILY", dataclasses.replace(tests.toyfamily.FAMILY, quantisation=None))
    assert_problem(client.post(url, json={}), 422, "has no int8 versions")
    assert client.get("/v1/jobs", params={"task": "regression"}).json()["total"] == 1  # nothing was queued
    assert parent["quantized_from"] is None

    spec = client.get("/openapi.json").json()["components"]["schemas"]["QuantiseIn"]["properties"]
    assert spec["calibration_batches"]["maximum"] == 1000 and spec["batch_size"]["maximum"] == 1024


def test_the_setting_overrides_a_familys_tolerance_and_families_show_it(settings):
    s = Settings(**{**settings.model_dump(), "families": TOY, "quantisation_tolerance": {"regression": 0.01}},
                 _env_file=None)
    try:
        with TestClient(create_app(s)) as client:
            client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
            fams = {f["task"]: f for f in client.get("/v1/families").json()}
            assert fams["regression"]["quantisation"] == {"metric": "val_mse", "goal": "min", "tolerance": 0.01,
                                                          "methods": ["static", "dynamic"], "op_types": None}
    finally:
        models.unregister("regression")
    with pytest.raises(ValueError, match="finite and >= 0"):
        Settings(quantisation_tolerance={"regression": -1}, _env_file=None)


def test_no_family_config_has_the_key_that_marks_a_quantisation_job():
    from app.jobs.quantisation import QUANTISATION, is_quantisation

    for task in models.FAMILIES:
        assert QUANTISATION not in {f.name for f in dataclasses.fields(models.family(task).config)}
    assert not is_quantisation({}) and is_quantisation({QUANTISATION: {}})


def test_a_worker_process_runs_a_quantisation_job_that_its_events_follow(stack):  # noqa: F811 (the fixture)
    """The Celery worker of `dlserve worker` (tests.toyfamily's stack: SQLite, the file broker) takes the job
    from the queue as it takes a training job; its event stream ends with the int8 version made."""
    client, log = stack
    trains_lines(client, log)
    r = client.post("/v1/models/lines/versions/1/quantize", json={"method": "static", "alias": "fast"})
    assert r.status_code == 202, r.text
    events = []
    with client.stream("GET", f"/v1/jobs/{r.json()['id']}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                events.append(line[7:])
            elif line.startswith("data: ") and events[-1] == "end":
                job = json.loads(line[6:])
                break
    assert job["status"] == "succeeded", f"{job['error']}\n{log.read_text()[-3000:]}"
    assert {"progress", "metrics", "log"} <= set(events)
    assert job["model_version"] == {"name": "lines", "version": 2} and job["kind"] == "quantisation"
    r = client.post("/v1/models/lines/predict", params={"alias": "fast"}, json={"inputs": [{"features": [0, 0, 0]}]})
    assert r.status_code == 200 and abs(r.json()["outputs"][0]["value"] - 3.0) < 0.3, r.text


def test_the_command_line_quantizes_follows_and_prints_the_parity(toy, tmp_path):
    client, settings = toy
    _train(client, settings)

    def worker() -> None:  # takes the job the command submits, as `dlserve worker` would
        while not (queued := client.get("/v1/jobs", params={"status": "queued"}).json()["items"]):
            time.sleep(0.05)
        run_training(queued[0]["id"], settings)

    thread = threading.Thread(target=worker, daemon=True)
    with live_server(settings) as host:
        env = {"DLSERVE_URL": f"http://{host}", "DLSERVE_KEY": ADMIN_KEY, "XDG_CONFIG_HOME": str(tmp_path),
               "DLSERVE_PROFILE": None}
        thread.start()
        result = CliRunner().invoke(cli, ["versions", "quantize", "lines", "1", "--method", "dynamic", "--batches",
                                          "2", "--alias", "int8"], env=env)
        thread.join(timeout=60)
        assert result.exit_code == 0, result.output
        assert "model lines version 2" in result.output and "dynamic: val_mse" in result.output
        result = CliRunner().invoke(cli, ["versions", "quantize", "lines", "2"], env=env)
        assert result.exit_code == 1 and "already an int8 version" in result.stderr, result.output


def test_a_worker_on_another_host_quantises_a_version_from_the_bucket(s3_uri, tmp_path, database_url, one_thread):
    """DLSERVE_ARTIFACT_ROOT=s3://...: the worker that quantises has neither the parent version nor the dataset
    on its disk; it fetches both from the bucket (checked) and registers the int8 version into it, which the
    API, on a third disk, serves."""
    from tests.store.conftest import s3_settings

    def host(name: str) -> Settings:
        return s3_settings(tmp_path / name, database_url, s3_uri, families=TOY, progress_interval_s=0.05,
                           heartbeat_interval_s=0.5)

    try:
        with TestClient(create_app(host("api")), raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
            _train(client, host("trainer"))
            job = _quantise(client, host("quantiser"), method="dynamic")
            assert job["status"] == "succeeded", job["error"]
            r = client.post("/v1/models/lines/predict?version=2", json={"inputs": [{"features": [1.0, 2.0, -4.0]}]})
            assert r.status_code == 200, r.text
    finally:
        for task, _ in models.parse(TOY):
            models.unregister(task)
