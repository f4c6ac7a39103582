"""A real Celery worker process (`dlserve worker`) on the file-system broker, and on Redis when
DLSERVE_TEST_REDIS_URL is set: a pool process killed with SIGKILL mid-run has its job delivered again,
resumed from the checkpoint and finished; a running job is cancelled within a step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import migrate
from app.db.session import make_engine, make_sessionmaker
from app.db.tables import TrainingRun
from app.main import create_app
from app.settings import Settings
from tests.conftest import ADMIN_KEY, PG_URL, REDIS_URL
from tests.workers import synthetic

pytestmark = pytest.mark.slow
TERMINAL = ("succeeded", "failed", "cancelled")


class Stack:
    """A worker process plus an API client sharing one database, artifact root and queue."""

    def __init__(self, home: Path, database_url: str, broker_url: str):
        self.settings = Settings(
            home=home, database_url=database_url, broker_url=broker_url, queue=f"training-{uuid.uuid4().hex[:8]}",
            admin_key=ADMIN_KEY, heartbeat_interval_s=0.5, heartbeat_timeout_s=5, progress_interval_s=0.1,
            reaper_interval_s=0, _env_file=None)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DLSERVE_")}
        env.update({f"DLSERVE_{k.upper()}": str(v) for k, v in self.settings.model_dump().items()
                    if k in ("home", "database_url", "broker_url", "queue", "heartbeat_interval_s",
                             "heartbeat_timeout_s", "progress_interval_s")})
        self.log = home / "worker.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--loglevel", "info"], env=env,
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        self.engine = make_engine(database_url)
        self.sessions = make_sessionmaker(self.engine)
        self.client = TestClient(create_app(self.settings), raise_server_exceptions=False)
        self.client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        self.client.__enter__()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while "ready." not in self.log.read_text():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the worker never became ready:\n" + self.log.read_text()
            time.sleep(0.1)

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        os.killpg(self.proc.pid, signal.SIGKILL)  # nothing left to finish; a warm shutdown takes seconds
        self.proc.wait()
        self.engine.dispose()

    def submit(self, dataset: bytes, config: dict, **body) -> str:
        r = self.client.post("/v1/datasets", files={"file": ("d.npz", dataset)}, data={"task": "classification"})
        assert r.status_code in (200, 201), r.text
        r = self.client.post("/v1/jobs", json={"task": "classification", "dataset_id": r.json()["id"],
                                               "config": config, **body})
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def run(self, run_id: str) -> TrainingRun:
        with self.sessions() as s:
            return s.scalar(select(TrainingRun).where(TrainingRun.id == run_id))

    def wait(self, run_id: str, until, timeout: float = 120) -> TrainingRun:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if until(run):
                return run
            assert time.monotonic() < deadline, f"gave up waiting; job is {run.status} {run.progress}:\n" + \
                self.log.read_text()[-3000:]
            time.sleep(0.05)


# The two deployments: embedded (SQLite + the file broker) and compose (PostgreSQL + Redis); PostgreSQL with the
# file broker where Redis is not given.
COMBOS = [("sqlite", "file")] + ([("postgresql", "redis")] if PG_URL and REDIS_URL else
                                 [("postgresql", "file")] if PG_URL else [])


@pytest.fixture(scope="module", params=COMBOS, ids=["-".join(c) for c in COMBOS])
def stack(request, pg_databases, tmp_path_factory):
    """Its own database and artifact root: datasets are found by hash, and a dataset recorded by another
    stack would point at files this worker cannot see."""
    backend, broker = request.param
    home = tmp_path_factory.mktemp("stack")
    url = pg_databases.create() if backend == "postgresql" else f"sqlite:///{home / 'dlserve.db'}"
    migrate.upgrade(url)
    s = Stack(home, url, REDIS_URL if broker == "redis" else "")
    yield s
    s.close()
    if broker == "redis":
        import redis

        redis.Redis.from_url(REDIS_URL).delete(s.settings.queue)


def test_a_worker_killed_mid_run_has_the_job_resumed_and_finished(stack):
    name = f"resumed-{uuid.uuid4().hex[:6]}"
    run_id = stack.submit(synthetic.npz_bytes(n=600, size=28, seed=3),
                          {"epochs": 4, "batch_size": 16, "lr": 0.003}, register_as=name, alias="production")
    checkpoint = stack.settings.resolved_artifact_root / f"runs/{run_id}/checkpoints/last.pt"
    running = stack.wait(run_id, lambda r: r.status in TERMINAL or (
        r.status == "running" and (r.progress or {}).get("epoch", 0) >= 1.2 and checkpoint.exists()))
    assert running.status == "running", f"the job ended before it could be killed: {running.status} {running.error}"
    pid = int(running.worker.rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)

    done = stack.wait(run_id, lambda r: r.status in TERMINAL)
    assert done.status == "succeeded", done.error
    assert done.attempts == 2 and done.worker is None
    assert done.progress["resumed_from"]["epoch"] >= 1
    assert int(done.progress["step"]) == done.progress["total"]
    job = stack.client.get(f"/v1/jobs/{run_id}").json()
    assert job["model_version"] == {"name": name, "version": 1}
    model = stack.client.get(f"/v1/models/{name}").json()
    assert model["aliases"] == {"production": 1} and model["versions"][0]["run_id"] == run_id
    steps = [m["step"] for m in stack.client.get(f"/v1/jobs/{run_id}/metrics", params={"key": "loss"}).json()["items"]]
    assert steps == list(range(1, done.progress["total"] + 1))  # each step once, none lost or repeated


def test_a_running_job_is_cancelled_within_a_step(stack):
    run_id = stack.submit(synthetic.npz_bytes(n=200, size=16, seed=4), {"epochs": 500, "batch_size": 8, "width": 8})
    stack.wait(run_id, lambda r: r.status in TERMINAL or (r.status == "running" and r.progress.get("step", 0) > 5))
    asked = time.monotonic()
    r = stack.client.post(f"/v1/jobs/{run_id}/cancel")
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    done = stack.wait(run_id, lambda r: r.status in TERMINAL, timeout=30)
    assert done.status == "cancelled" and done.error is None
    assert time.monotonic() - asked < 5  # progress is written (and cancel checked) every 0.1 s here
    assert done.progress["step"] < done.progress["total"]
    assert stack.client.get(f"/v1/jobs/{run_id}").json()["model_version"] is None
