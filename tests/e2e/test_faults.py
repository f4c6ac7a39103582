"""Faults a deployment meets: the database restarting under a training job and a predict load, and a
rolling restart of the API (SIGTERM with requests in flight). RELIABILITY.md records these figures.

The PostgreSQL here is a throwaway server this module starts itself with initdb, on its own folder and
port: the shared server the rest of the suite uses is never touched."""

from __future__ import annotations

import base64
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.db import migrate
from app.jobs.reaper import reap_once
from tests import onnx_models
from tests.conftest import ADMIN_KEY
from tests.live_server import free_port
from tests.workers import synthetic

IMAGE = {"image": base64.b64encode(onnx_models.png(np.zeros((32, 32, 3), np.uint8))).decode()}
H = {"Authorization": f"Bearer {ADMIN_KEY}"}


class ThrowawayPostgres:
    def __init__(self, bindir: str):
        self.bin = Path(bindir)
        self.dir = Path(tempfile.mkdtemp(prefix="dlserve-pg-"))
        self.port = free_port()
        # initdb and postgres refuse to run as root: run them as the postgres user, in a folder it owns
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self.data = self.dir / "data"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or ([shutil.which("initdb")] if shutil.which(
        "initdb") else [])
    if not bins:
        pytest.skip("no initdb on this machine: the PostgreSQL restart test needs a server of its own")
    try:
        pg = ThrowawayPostgres(str(Path(bins[-1]).parent))
    except (subprocess.CalledProcessError, OSError) as e:
        pytest.skip(f"could not start a throwaway PostgreSQL: {e}")
    yield pg
    pg.close()


def test_a_postgresql_restart_loses_no_job_and_no_predict(postgres, tmp_path):
    from tests.workers.test_worker_process import Stack  # a real `dlserve worker` process beside the API

    migrate.upgrade(postgres.url)
    stack = Stack(tmp_path, postgres.url, "")
    try:
        c = stack.client
        model = onnx_models.to_bytes(onnx_models.tiny_classifier())
        assert c.post("/v1/models/tiny/versions", files={"file": ("m.onnx", model)},
                      data={"task": "classification"}).status_code == 201
        assert c.put("/v1/models/tiny/aliases/production", json={"version": 1}).status_code == 200
        assert c.post("/v1/models/tiny/predict", json={"inputs": [IMAGE]}).status_code == 200  # loaded

        run_id = stack.submit(synthetic.npz_bytes(n=400, size=16, seed=5), {"epochs": 8, "batch_size": 8})
        running = stack.wait(run_id, lambda r: r.status != "queued" and (r.progress or {}).get("step", 0) > 20)
        assert running.status == "running", running.error

        predicts: list[int] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                predicts.append(c.post("/v1/models/tiny/predict", json={"inputs": [IMAGE]}).status_code)

        loader = threading.Thread(target=load)
        loader.start()
        postgres.stop()
        try:
            time.sleep(1.5)
            during = c.get("/v1/models")  # needs the database: 503 with Retry-After, never a 500
        finally:
            postgres.start()
        time.sleep(1)
        stop.set()
        loader.join()
        assert during.status_code == 503 and during.headers["retry-after"], during.text
        assert "SELECT" not in during.text and "psycopg" not in during.text
        assert predicts and set(predicts) == {200}, {s: predicts.count(s) for s in set(predicts)}
        assert c.get("/v1/models").status_code == 200  # reconnected, no restart

        # The job rides the outage out, or is handed on (the reaper, as the API runs it) and resumes.
        deadline = time.monotonic() + 120
        while (run := stack.run(run_id)).status not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, f"job stuck {run.status} {run.progress}"
            reap_once(stack.settings, stack.sessions, c.app.state.broker)
            time.sleep(0.5)
        assert run.status == "succeeded", run.error
        steps = [m["step"] for m in c.get(f"/v1/jobs/{run_id}/metrics", params={"key": "loss"}).json()["items"]]
        assert steps == list(range(1, run.progress["total"] + 1))  # the metrics of the outage were kept
        print(f"\nPostgreSQL restart: {len(predicts)} predicts during it, all 200; job {run.status} "
              f"after {run.attempts} attempt(s)")
    finally:
        stack.close()


def test_sigterm_lets_the_requests_in_flight_finish(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLSERVE_")}
    env.update(DLSERVE_HOME=str(tmp_path / "var"), DLSERVE_ADMIN_KEY=ADMIN_KEY, DLSERVE_PORT=str(port))
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--no-worker"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        model = onnx_models.to_bytes(onnx_models.tiny_classifier())
        httpx.post(f"{base}/v1/models/tiny/versions", headers=H, files={"file": ("m.onnx", model)},
                   data={"task": "classification"}).raise_for_status()
        httpx.put(f"{base}/v1/models/tiny/aliases/production", headers=H, json={"version": 1}).raise_for_status()

        body = b'{"inputs": [' + ", ".join([f'{{"image": "{IMAGE["image"]}"}}'] * 4).encode() + b"]}"
        sent = threading.Barrier(9)

        def slow_body():
            # the request is in flight (headers received, body still arriving) when SIGTERM comes
            yield body[:10]
            sent.wait()
            time.sleep(1.0)
            yield body[10:]

        answers: list[int | str] = []

        def predict() -> None:
            try:
                r = httpx.post(f"{base}/v1/models/tiny/predict", content=slow_body(), timeout=30,
                               headers={**H, "Content-Type": "application/json"})
                answers.append(r.status_code)
            except httpx.HTTPError as e:
                answers.append(type(e).__name__)

        clients = [threading.Thread(target=predict) for _ in range(8)]
        for t in clients:
            t.start()
        sent.wait()
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        for t in clients:
            t.join()
        assert answers == [200] * 8, answers
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/healthz")  # and it did stop
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
