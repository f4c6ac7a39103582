"""No shared disk between replicas (issue 21): two `dlserve serve` API processes and two `dlserve worker`
processes, each with its own DLSERVE_HOME and no folder in common, sharing only the database, Redis and an
S3-compatible server (moto's, started by the tests, addressed path-style as MinIO is), behind Debian's nginx
running the committed deploy/nginx.conf (its upstream rendered for the two local ports).

Through nginx: a large upload streams to a replica while it is still being sent, a job's event stream
arrives live, the job trains on either worker and, its worker killed mid-run, is resumed by the other; the
model is then served by both APIs, and an alias moved through one is followed by the other within seconds.
Started at once on one database, the two APIs create one admin key between them. Afterwards every object in
the bucket belongs to a dataset, a version or a run that succeeded, and no multipart upload is left open."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from app.db import migrate
from app.db.session import make_engine, make_sessionmaker
from app.db.tables import Dataset, ModelVersion
from app.store.s3 import S3Objects
from app.store.sweep import owner, sweep
from tests import onnx_models
from tests.conftest import PG_URL, REDIS_URL, S3_IGNORED, new_bucket, root_path, s3_variables
from tests.live_server import free_port, serve_process
from tests.workers import synthetic

pytestmark = pytest.mark.slow
TERMINAL = ("succeeded", "failed", "cancelled")
IMAGE = onnx_models.png(np.zeros((16, 16, 3), np.uint8))


def _needed(what: str, why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing: {why} (.ci/run provides it)")
    pytest.skip(f"{what} is missing: {why}")


def _nginx_config(tmp: Path, listen: int, ports: list[int]) -> Path:
    """deploy/nginx.conf with its upstream's server line replaced by the local replicas and its listen port by
    a free one; everything else (buffering, body size, timeouts) is the committed file's."""
    text = (root_path() / "deploy" / "nginx.conf").read_text()
    servers = "".join(f"        server 127.0.0.1:{p} max_fails=0;\n" for p in ports)
    text, found = re.subn(r"^\s*server api:\d+[^;]*;\n", servers, text, flags=re.M)
    assert found == 1, "deploy/nginx.conf has no `server api:PORT ...;` line in its upstream"
    text, found = re.subn(r"listen 80;", f"listen 127.0.0.1:{listen};", text)
    assert found == 1
    # Debian's nginx keeps request bodies and its other temporary files under /var/lib/nginx: here, in tmp
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "".join(f"    {kind}_temp_path {tmp / kind};\n" for kind in kinds)
    text = text.replace("http {\n", "http {\n" + temp, 1)
    path = tmp / "nginx.conf"
    path.write_text(text)
    return path


class Cluster:
    def __init__(self, tmp: Path, database_url: str, s3_endpoint: str):
        self.tmp, self.stack, self.database_url = tmp, ExitStack(), database_url
        # the one artifact root of all four processes: a bucket; nothing else on disk is theirs in common
        self.artifact_root = f"s3://{new_bucket(s3_endpoint)}/dlserve"
        self.s3 = s3_variables(s3_endpoint)
        self.queue = f"scaleout-{uuid.uuid4().hex[:8]}"
        self.base = {k: v for k, v in os.environ.items() if not k.startswith(("DLSERVE_", "PROMETHEUS_", "AWS_"))}
        self.base.update(self.s3)
        self.base.update({
            "DLSERVE_DATABASE_URL": database_url, "DLSERVE_BROKER_URL": REDIS_URL, "DLSERVE_QUEUE": self.queue,
            "DLSERVE_ARTIFACT_ROOT": self.artifact_root, "DLSERVE_S3_ADDRESSING_STYLE": "path",
            # the large upload's object goes up in parts, so an upload left open would show in the bucket
            "DLSERVE_S3_MULTIPART_BYTES": str(16 * 2**20), "DLSERVE_ALIAS_POLL_INTERVAL_S": "0.2",
            "DLSERVE_HEARTBEAT_INTERVAL_S": "0.5", "DLSERVE_HEARTBEAT_TIMEOUT_S": "4",
            "DLSERVE_PROGRESS_INTERVAL_S": "0.1", "DLSERVE_REAPER_INTERVAL_S": "1",
            "DLSERVE_TRAIN_THREADS": "1"})
        self.api_ports = [free_port(), free_port()]
        self.apis: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []

    def home(self, name: str) -> Path:
        return self.tmp / name

    def env(self, name: str, **extra: str) -> dict[str, str]:
        return {**self.base, "DLSERVE_HOME": str(self.home(name)), **extra}

    def start_apis(self) -> None:
        """Both at once, as an orchestrator starts replicas: the admin key race is real."""
        dlserve = str(Path(sys.executable).parent / "dlserve")
        starts = [serve_process([dlserve, "serve", "--no-migrate", "--no-worker", "--host", "127.0.0.1"],
                                port, self.tmp / f"api{i}.log", env=self.env(f"api{i}", DLSERVE_PORT=str(port)))
                  for i, port in enumerate(self.api_ports)]
        with ThreadPoolExecutor(2) as pool:
            self.apis = list(pool.map(lambda cm: cm.__enter__(), starts))
        for cm in starts:
            self.stack.push(cm.__exit__)

    def start_worker(self, name: str) -> subprocess.Popen:
        log = self.tmp / f"{name}.log"
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--loglevel", "info"], env=self.env(name),
                                stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        self.stack.callback(_kill_group, proc)
        self.workers.append(proc)
        return proc

    def wait_workers(self) -> None:
        deadline = time.monotonic() + 90
        for i, proc in enumerate(self.workers):
            log = self.tmp / f"worker{i}.log"
            while "ready." not in log.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)

    def start_nginx(self) -> str:
        port = free_port()
        config = _nginx_config(self.tmp, port, self.api_ports)
        run_as = "user root; " if os.geteuid() == 0 else ""  # worker processes reach tmp's folders
        main = f"daemon off; {run_as}pid {self.tmp / 'nginx.pid'}; error_log {self.tmp / 'nginx.err'};"
        proc = subprocess.Popen([shutil.which("nginx"), "-p", str(self.tmp), "-c", str(config), "-g", main],
                                stdout=open(self.tmp / "nginx.log", "w"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.stack.callback(_kill_group, proc)
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (self.tmp / "nginx.err").read_text()
            time.sleep(0.1)
        pytest.fail("nginx never answered: " + (self.tmp / "nginx.err").read_text())

    def logs(self, prefix: str) -> str:
        return "".join(p.read_text() for p in sorted(self.tmp.glob(f"{prefix}*.log")))


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, pg_databases, s3_endpoint):
    if not REDIS_URL:
        _needed("DLSERVE_TEST_REDIS_URL", "replicas in separate homes share the job queue through Redis")
    if not shutil.which("nginx"):
        _needed("nginx", "the committed deploy/nginx.conf runs in front of the two APIs")
    tmp = tmp_path_factory.mktemp("scaleout")
    url = pg_databases.create() if PG_URL else f"sqlite:///{tmp / 'shared.db'}"
    migrate.upgrade(url)  # compose's `migrate` service: once, before the replicas
    c = Cluster(tmp, url, s3_endpoint)
    try:
        for i in range(2):  # first: they start (import torch) while the APIs do
            c.start_worker(f"worker{i}")
        c.start_apis()
        c.url = c.start_nginx()
        c.wait_workers()
        created = re.findall(r"Created a local admin key .*: (dls_\S+)", c.logs("api"))
        assert len(created) == 1, c.logs("api")  # one replica made it; the other says the database has one
        assert "the database has one already" in c.logs("api")
        c.key = created[0]
        c.client = httpx.Client(base_url=c.url, headers={"Authorization": f"Bearer {c.key}"}, timeout=60)
        c.stack.callback(c.client.close)
        yield c
    finally:
        c.stack.close()
        import redis

        redis.Redis.from_url(REDIS_URL).delete(c.queue)


def _spooled_bytes(pid: int) -> int:
    """What the API process holds in its upload spool files (unnamed: seen through /proc/<pid>/fd)."""
    total = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if ".staging" in os.readlink(fd) or "(deleted)" in os.readlink(fd):
                total += fd.stat().st_size
        except OSError:
            continue
    return total


def test_a_large_upload_reaches_a_replica_while_it_is_still_being_sent(cluster):
    dataset = synthetic.npz_bytes(n=24000, size=30, seed=1)  # ~62 MiB
    half = len(dataset) // 2
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"task\"\r\n\r\nclassification\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.npz\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    seen = threading.Event()

    def body():
        yield head
        for i in range(0, half, 1 << 20):
            yield dataset[i:min(i + (1 << 20), half)]
        # half sent: the rest waits until a replica is seen holding most of the first half, which it can
        # only do if nginx passes the body on as it comes (proxy_request_buffering off)
        seen.wait(30)
        for i in range(half, len(dataset), 1 << 20):
            yield dataset[i:i + (1 << 20)]
        yield f"\r\n--{boundary}--\r\n".encode()

    answer = {}
    sender = threading.Thread(target=lambda: answer.setdefault("r", cluster.client.post(
        "/v1/datasets", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})))
    sender.start()
    deadline = time.monotonic() + 30
    while not seen.is_set() and time.monotonic() < deadline:
        if max(_spooled_bytes(p.pid) for p in cluster.apis) > half * 0.8:
            seen.set()
        time.sleep(0.05)
    streamed = seen.is_set()
    seen.set()
    sender.join(60)
    assert streamed, "no replica held the first half of the upload while the rest was held back: nginx buffered it"
    r = answer["r"]
    assert r.status_code in (200, 201), r.text
    assert r.json()["size_bytes"] == len(dataset)


def test_a_job_streams_live_trains_on_either_worker_and_survives_losing_its_worker(cluster):
    c = cluster.client
    ds = c.post("/v1/datasets", files={"file": ("d.npz", synthetic.npz_bytes(n=96, size=8, seed=3))},
                data={"task": "classification"})
    assert ds.status_code in (200, 201), ds.text
    job = c.post("/v1/jobs", json={"task": "classification", "dataset_id": ds.json()["id"], "register_as": "scaled",
                                   "alias": "production", "config": {"epochs": 40, "batch_size": 16, "width": 4}})
    # 40 epochs: an epoch of this tiny set takes about 0.1 s on a fast machine, and the worker must still be
    # training when the loop below has seen its first checkpoint and kills it (with 10, it had finished).
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    arrivals: list[tuple[float, str, dict]] = []
    killed: dict[str, int] = {}

    def follow() -> None:
        with httpx.Client(base_url=cluster.url, headers=c.headers, timeout=120) as events, \
                events.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            kind = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind in ("progress", "end"):
                    arrivals.append((time.monotonic(), kind, json.loads(line[6:])))
                    if kind == "end":
                        return

    reader = threading.Thread(target=follow)
    reader.start()
    deadline = time.monotonic() + 90
    while not killed:  # kill the worker training it once a checkpoint is in the store
        state = c.get(f"/v1/jobs/{job_id}").json()
        assert state["status"] not in TERMINAL, f"the job ended before its worker could be killed: {state}"
        listing = c.get(f"/v1/jobs/{job_id}/artifacts")
        assert listing.status_code == 200, listing.text
        names = {a["name"] for a in listing.json()["items"]}
        if state["status"] == "running" and "last.pt" in names and (state.get("progress") or {}).get("epoch", 0) >= 1:
            pid = int(re.search(r":(\d+)$", state["worker"]).group(1))
            owner = next(w for w in cluster.workers if os.getpgid(pid) == w.pid)
            killed["index"], killed["at"] = cluster.workers.index(owner), time.monotonic()
            _kill_group(owner)
        assert time.monotonic() < deadline, cluster.logs("worker")[-3000:]
        time.sleep(0.1)
    reader.join(120)
    end = arrivals[-1]
    assert end[1] == "end" and end[2]["status"] == "succeeded", (end, cluster.logs("worker")[-3000:])
    done = c.get(f"/v1/jobs/{job_id}").json()
    assert done["attempts"] == 2 and done["progress"]["resumed_from"]["epoch"] >= 1
    survivor = cluster.tmp / f"worker{1 - killed['index']}.log"
    assert job_id in survivor.read_text(), "the other worker did not take the job up"
    # live: the job spans the heartbeat timeout (4 s) between the kill and its resumption, so a buffered
    # stream would deliver everything at the end; here progress came before the kill and after it
    progress = [t for t, kind, _ in arrivals if kind == "progress"]
    assert progress[0] < killed["at"] < progress[-1] and end[0] - progress[0] > 3


def test_the_model_is_served_by_both_apis_and_an_alias_move_reaches_the_other(cluster):
    c = cluster.client
    direct = [httpx.Client(base_url=f"http://127.0.0.1:{p}", headers=c.headers, timeout=60)
              for p in cluster.api_ports]
    answers = [d.post("/v1/models/scaled/predict", files={"file": ("x.png", IMAGE)}) for d in direct]
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].json()["outputs"] == answers[1].json()["outputs"] and answers[0].json()["version"] == 1
    up = direct[0].post("/v1/models/scaled/versions", files={"file": ("m.onnx", onnx_models.to_bytes(
        onnx_models.tiny_classifier(seed=4)))}, data={"task": "classification"})
    assert up.status_code == 201, up.text
    moved = direct[0].put("/v1/models/scaled/aliases/production", json={"version": 2})
    assert moved.status_code == 200, moved.text
    t0 = time.monotonic()
    while direct[1].post("/v1/models/scaled/predict", files={"file": ("x.png", IMAGE)}).json().get("version") != 2:
        assert time.monotonic() - t0 < 5, "the other replica still serves version 1 five seconds after the move"
        time.sleep(0.1)
    for d in direct:
        d.close()


def test_the_bucket_holds_nothing_stray_or_half_written(cluster, monkeypatch):
    """What issue 21's check does by hand after the run: every object belongs to a row (the sweep's own rule
    for ownership, with no grace period), no multipart upload is left open, and the bytes are the rows'."""
    for name, value in cluster.s3.items():
        monkeypatch.setenv(name, value)
    for name in S3_IGNORED:
        monkeypatch.delenv(name, raising=False)
    objects = S3Objects(cluster.artifact_root, addressing_style="path")
    keys = sorted(o.key for o in objects.list())
    assert keys and all(owner(k) is not None and not k.startswith(".staging/") for k in keys), keys
    engine = make_engine(cluster.database_url)
    try:
        report = sweep(objects, make_sessionmaker(engine), grace_s=0)
        assert (report.removed, report.aborted) == ([], []), "stray objects or open multipart uploads"
        assert report.kept == len(keys)
        with make_sessionmaker(engine)() as session:
            datasets = session.scalars(select(Dataset)).all()
            versions = session.scalars(select(ModelVersion)).all()
    finally:
        engine.dispose()
    assert len(datasets) == 2 and len(versions) == 2
    for d in datasets:  # each dataset is one object, the bytes as uploaded
        assert [k for k in keys if k.startswith(f"{d.uri}/")] == [f"{d.uri}/upload"]
        assert objects.stat(f"{d.uri}/upload").size == d.size_bytes
    for v in versions:  # whole, and the registry's bytes (get_to_path checks the sha256)
        objects.get_to_path(f"{v.artifact_uri}/model.onnx", cluster.tmp / "check.onnx", v.sha256)
    runs = {k.split("/")[1] for k in keys if k.startswith("runs/")}
    assert len(runs) == 1 and {f"runs/{r}/checkpoints/last.pt" for r in runs} <= set(keys)
