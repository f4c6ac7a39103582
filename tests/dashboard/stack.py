"""A real `dlserve serve` (API and its training worker) for the browser tests, and a small client of its API
to set the scene: keys, datasets, jobs, model versions."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.live_server import free_port, serve_process

ADMIN_KEY = "dash-admin-key-0123456789abcdef"
TERMINAL = ("succeeded", "failed", "cancelled")


class Api:
    """The JSON API with the admin key (or another), failing loudly on anything unexpected."""

    def __init__(self, url: str, key: str = ADMIN_KEY):
        self.url = url
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    def call(self, method: str, path: str, expect: tuple[int, ...] = (200, 201, 202, 204), **kw) -> httpx.Response:
        r = self.http.request(method, path, **kw)
        assert r.status_code in expect, f"{method} {path}: {r.status_code} {r.text[:500]}"
        return r

    def key(self, scopes: list[str], name: str) -> str:
        return self.call("POST", "/v1/keys", json={"scopes": scopes, "name": name}).json()["key"]

    def dataset(self, content: bytes, filename: str, task: str, **data) -> dict:
        return self.call("POST", "/v1/datasets", files={"file": (filename, content)},
                         data={"task": task, **data}).json()

    def job(self, task: str, dataset_id: str, config: dict, **fields) -> dict:
        return self.call("POST", "/v1/jobs", json={"task": task, "dataset_id": dataset_id, "config": config,
                                                   **fields}).json()

    def wait(self, job_id: str, timeout_s: float = 240) -> dict:
        deadline = time.monotonic() + timeout_s
        while (job := self.call("GET", f"/v1/jobs/{job_id}").json())["status"] not in TERMINAL:
            assert time.monotonic() < deadline, f"job {job_id} still {job['status']}: {job['progress']}"
            time.sleep(0.2)
        assert job["status"] == "succeeded", job.get("error")
        return job

    def model_version(self, name: str, onnx: bytes, task: str, metadata: str | None = None) -> dict:
        data = {"task": task, **({"metadata": metadata} if metadata else {})}
        return self.call("POST", f"/v1/models/{name}/versions", files={"file": ("model.onnx", onnx)},
                         data=data).json()


@contextmanager
def serve(home: Path, worker: bool = True) -> Iterator[str]:
    """`dlserve serve` on a free port (with its training worker unless told otherwise) in `home`; yields
    the base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLSERVE_")}
    env.update(DLSERVE_HOME=str(home), DLSERVE_ADMIN_KEY=ADMIN_KEY, DLSERVE_TRAIN_THREADS="1",
               DLSERVE_PROGRESS_INTERVAL_S="0.2", DLSERVE_HEARTBEAT_INTERVAL_S="1",
               DLSERVE_ALIAS_POLL_INTERVAL_S="0.2", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *([] if worker else ["--no-worker"])]
    with serve_process(command, port, home / "serve.log", cwd=home, env=env):
        yield f"http://127.0.0.1:{port}"
