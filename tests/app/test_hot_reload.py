"""Loading and following aliases: warm before ready, moves lose no request, every process follows,
replaced versions are freed, the memory budget evicts, providers are checked at start-up."""

import base64
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.inference.runtime import ProviderUnavailable
from app.main import create_app
from tests import onnx_models
from tests.conftest import ADMIN_KEY, root_path, upload

H = {"Authorization": f"Bearer {ADMIN_KEY}"}
IMAGE = {"image": base64.b64encode(onnx_models.png(np.zeros((32, 32, 3), np.uint8))).decode()}


@pytest.fixture
def two_versions(client):
    upload(client, "m", onnx_models.to_bytes(onnx_models.tiny_classifier(seed=0)))
    upload(client, "m", onnx_models.to_bytes(onnx_models.tiny_classifier(seed=1)))
    client.put("/v1/models/m/aliases/production", json={"version": 1})


def wait_ready(c: TestClient) -> dict:
    for _ in range(200):
        r = c.get("/readyz")
        if r.status_code == 200:
            return r.json()
        time.sleep(0.02)
    raise AssertionError(r.text)


def test_ready_means_the_production_versions_are_loaded(settings, two_versions):
    with TestClient(create_app(settings), headers=H) as c:
        assert wait_ready(c)["checks"]["models"] == "ok (1 loaded)"
        assert 'dlserve_models_loaded 1.0' in c.get("/metrics").text


def test_moving_the_alias_under_load_loses_no_request(settings, two_versions):
    settings.alias_poll_interval_s = 0.2
    statuses, versions = [], []
    stop = threading.Event()
    with TestClient(create_app(settings), headers=H) as c:
        wait_ready(c)

        def hammer():
            while not stop.is_set():
                r = c.post("/v1/models/m/predict", json={"inputs": [IMAGE]})
                statuses.append(r.status_code)
                versions.append(r.json().get("version"))

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for v in (2, 1, 2):
            time.sleep(0.6)
            assert c.put("/v1/models/m/aliases/production", json={"version": v}).status_code == 200
        time.sleep(0.8)
        stop.set()
        for t in threads:
            t.join()
        tail = [c.post("/v1/models/m/predict", json={"inputs": [IMAGE]}).json()["version"] for _ in range(5)]
    assert len(statuses) > 20 and set(statuses) == {200}
    assert {1, 2} <= set(versions)
    assert tail == [2] * 5


def test_another_process_follows_a_move_and_frees_the_old_version(settings, two_versions):
    settings.alias_poll_interval_s = 0.2
    with TestClient(create_app(settings), headers=H) as a, TestClient(create_app(settings), headers=H) as b:
        wait_ready(a), wait_ready(b)
        assert b.post("/v1/models/m/predict", json={"inputs": [IMAGE]}).json()["version"] == 1
        a.put("/v1/models/m/aliases/production", json={"version": 2})  # through process A only
        deadline = time.monotonic() + 5
        while b.post("/v1/models/m/predict", json={"inputs": [IMAGE]}).json()["version"] != 2:
            assert time.monotonic() < deadline, "process B never followed the alias"
            time.sleep(0.05)
        time.sleep(0.3)
        states = {(m["name"], m["version"]): m["state"] for m in b.post("/v2/repository/index").json()}
    assert states == {("m", "1"): "UNAVAILABLE", ("m", "2"): "READY"}


def test_another_process_follows_a_repository_unload_and_load(settings, two_versions):
    """POST /v2/repository/models/{name}/unload through one process: the other refuses the model too; a
    load of version 2 through that one: both serve version 2, and keep it loaded (the alias says 1)."""
    settings.alias_poll_interval_s = 0.2

    def until(c: TestClient, path: str, status: int) -> None:
        deadline = time.monotonic() + 5
        while c.get(path).status_code != status:
            assert time.monotonic() < deadline, f"{path} never answered {status}"
            time.sleep(0.05)

    with TestClient(create_app(settings), headers=H) as a, TestClient(create_app(settings), headers=H) as b:
        wait_ready(a), wait_ready(b)
        assert a.post("/v2/repository/models/m/unload").json() == {"name": "m", "unloaded_versions": 1}
        until(b, "/v2/models/m/versions/1/ready", 503)
        assert b.post("/v1/models/m/predict", json={"inputs": [IMAGE]}).status_code == 409
        assert b.post("/v2/repository/models/m/load", json={"parameters": {"version": 2}}).status_code == 200
        until(a, "/v2/models/m/versions/2/ready", 200)
        assert a.post("/v1/models/m/predict", json={"inputs": [IMAGE]}).json()["version"] == 1  # the alias


def test_deleting_a_loaded_version_unloads_it(settings, two_versions):
    settings.alias_poll_interval_s = 0.2
    with TestClient(create_app(settings), headers=H) as c:
        wait_ready(c)
        assert c.post("/v1/models/m/predict?version=2", json={"inputs": [IMAGE]}).status_code == 200
        assert c.delete("/v1/models/m/versions/2").status_code == 204
        time.sleep(0.5)
        r = c.post("/v1/models/m/predict?version=2", json={"inputs": [IMAGE]})
        assert r.status_code == 404
        assert [m["version"] for m in c.post("/v2/repository/index").json()] == ["1"]


def test_memory_budget_evicts_the_least_recently_used_unaliased_version(settings, client):
    settings.model_memory_budget_mb = 0.2  # each tiny model takes more than 0.12 MB: one unaliased fits
    for seed in range(3):
        upload(client, "m", onnx_models.to_bytes(onnx_models.tiny_classifier(seed=seed)))
    client.put("/v1/models/m/aliases/production", json={"version": 1})
    with TestClient(create_app(settings), headers=H) as c:
        wait_ready(c)
        for v in (2, 3):
            assert c.post(f"/v1/models/m/predict?version={v}", json={"inputs": [IMAGE]}).status_code == 200
        time.sleep(0.2)
        states = {m["version"]: m["state"] for m in c.post("/v2/repository/index").json()}
        # v1 is pinned by its alias, v3 was just used, v2 had to go
        assert states == {"1": "READY", "2": "UNAVAILABLE", "3": "READY"}
        assert c.post("/v1/models/m/predict?version=2", json={"inputs": [IMAGE]}).status_code == 200


def test_asking_for_a_provider_the_runtime_lacks_fails_start_up(settings):
    settings.providers = ["cuda", "cpu"]
    with pytest.raises(ProviderUnavailable, match="asks for cuda.*DLSERVE_PROVIDERS=cpu"):
        create_app(settings)


def test_the_serving_path_never_imports_torch(settings, two_versions):
    code = f"""
import sys, json
from fastapi.testclient import TestClient
from app.main import create_app
from app.settings import Settings
s = Settings(home={str(settings.home)!r}, database_url={settings.resolved_database_url!r}, admin_key={ADMIN_KEY!r})
with TestClient(create_app(s), headers={H!r}) as c:
    for _ in range(200):
        if c.get("/readyz").status_code == 200: break
    r = c.post("/v1/models/m/predict", json={json.dumps({"inputs": [IMAGE]})})
    assert r.status_code == 200, r.text
print("torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root_path(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_a_version_still_loading_answers_503_with_retry_after(settings, two_versions):
    settings.load_wait_s = 0  # do not wait for the load at all
    with TestClient(create_app(settings), headers=H) as c:
        wait_ready(c)
        r = c.post("/v1/models/m/predict?version=2", json={"inputs": [IMAGE]})
        assert r.status_code == 503 and r.headers["Retry-After"] == "2"
        assert "is loading" in r.json()["detail"]
        deadline = time.monotonic() + 10
        while (r := c.post("/v1/models/m/predict?version=2", json={"inputs": [IMAGE]})).status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert r.status_code == 200 and r.json()["version"] == 2
