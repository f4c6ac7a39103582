"""Fixtures. Every database test runs on SQLite, and also on PostgreSQL when DLSERVE_TEST_DATABASE_URL
is set (.ci/run sets it to the local server). Each backend gets a fresh, migrated database per test
session; each test starts from empty tables and its own artifact directory."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

from app.db import migrate
from app.db.tables import Base
from app.main import create_app
from app.settings import Settings
from tests import onnx_models

ADMIN_KEY = "test-admin-key-0123456789"
PG_URL = os.environ.get("DLSERVE_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("DLSERVE_TEST_REDIS_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
# The backend of the tests marked one_backend: the stricter one where CI has it (types, overflow, locking).
PRIMARY_BACKEND = BACKENDS[-1]


class PostgresDatabases:
    """Creates throw-away databases on the test server, and drops them afterwards."""

    def __init__(self, url: str):
        self.admin_url = make_url(url)
        self.made: list[str] = []

    def create(self) -> str:
        name = f"dlserve_test_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        for name in self.made:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(sql))
        engine.dispose()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PostgresDatabases | None]:
    if not PG_URL:
        yield None
        return
    dbs = PostgresDatabases(PG_URL)
    yield dbs
    dbs.drop_all()


@pytest.fixture
def empty_database_url(request, tmp_path, pg_databases) -> str:
    """A new, un-migrated database on the backend the test is parametrized with."""
    backend = getattr(request, "param", "sqlite")
    if backend == "postgresql":
        return pg_databases.create()
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture(scope="session", params=BACKENDS)
def migrated_database_url(request, tmp_path_factory, pg_databases) -> str:
    if request.param == "postgresql":
        url = pg_databases.create()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'dlserve.db'}"
    migrate.upgrade(url)
    return url


def empty_tables(url: str) -> None:
    """Deletes every row, children first: a migrated database as a test starts from it."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()


@pytest.fixture
def database_url(migrated_database_url) -> str:
    empty_tables(migrated_database_url)
    return migrated_database_url


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url, admin_key=ADMIN_KEY,
                    _env_file=None)


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        yield c


@pytest.fixture(scope="session")
def tiny_onnx() -> bytes:
    return onnx_models.to_bytes(onnx_models.tiny_classifier())


def upload(client: TestClient, name: str, model: bytes, task: str = "classification", **fields) -> dict:
    r = client.post(f"/v1/models/{name}/versions", files={"file": ("model.onnx", model)}, data={"task": task, **fields})
    assert r.status_code == 201, r.text
    return r.json()


def upload_dataset(client: TestClient, content: bytes, filename: str, task: str, fmt: str | None = None,
                   **fields):
    """POST /v1/datasets; the response, for the test to judge (no format field when `fmt` is None)."""
    data = {"task": task, **({"format": fmt} if fmt else {}), **fields}
    return client.post("/v1/datasets", files={"file": (filename, content)}, data=data)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Training in this process on one thread: tiny models gain nothing from a second thread, and a
    step-by-step LSTM is hundreds of tiny ops; on a small shared machine torch's threads fighting other
    processes for the cores make a tiny run many times slower. torch is imported here, not at the top,
    so that tests which never train do not pay for it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def assert_problem(r, status: int, *needles: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("urn:dlserve:problem:")
    assert body["instance"] == r.headers["x-request-id"]
    for needle in needles:
        assert needle in body["detail"], body["detail"]
    return body


def assert_item_error(r, index: int, status: int, field: str, *needles: str) -> dict:
    """A 200 whose outputs[index] is the per-item error naming `field` (the other items were answered)."""
    assert r.status_code == 200, r.text
    slot = r.json()["outputs"][index]
    assert set(slot) == {"error"}, slot
    error = slot["error"]
    assert error["status"] == status and error["field"] == field and error["type"].startswith("urn:dlserve:problem:")
    for needle in (field, *needles):
        assert needle in error["detail"], error["detail"]
    return error


def root_path() -> Path:
    return Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Tests marked one_backend keep only their PRIMARY_BACKEND parametrisation (the suite's time is spent where
    a second database adds coverage: the API's reads and writes, not a family's training)."""
    keep, dropped = [], []
    for item in items:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("migrated_database_url")
        if backend and backend != PRIMARY_BACKEND and item.get_closest_marker("one_backend"):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from tests.docblocks import EXEMPT

    exempt = config.stash.get(EXEMPT, [])
    if exempt:
        terminalreporter.section(f"README and docs blocks not run ({len(exempt)})")
        for line in exempt:
            terminalreporter.line(line)


# -- a real S3-compatible server (moto's server mode) on a free port of this machine: the same HTTP requests as
# to AWS or MinIO, one server per test session, a new bucket per user of it (tests/store, tests/e2e, tests/app)
def s3_variables(endpoint: str) -> dict[str, str]:
    """The standard AWS variables a deployment sets, pointing at the tests' server."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret",
            "AWS_REGION": "us-east-1"}


S3_IGNORED = ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION")  # a developer's own, never the tests'


def s3_client(endpoint: str):
    import boto3

    v = s3_variables(endpoint)
    return boto3.client("s3", endpoint_url=endpoint, region_name=v["AWS_REGION"], aws_access_key_id=v[
        "AWS_ACCESS_KEY_ID"], aws_secret_access_key=v["AWS_SECRET_ACCESS_KEY"])


def new_bucket(endpoint: str) -> str:
    name = f"dlserve-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    from tests.live_server import free_port

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request drowns a failure's report
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_uri(s3_endpoint, monkeypatch) -> str:
    """s3://<a new bucket>/dlserve, with AWS_ENDPOINT_URL and the credentials set as a deployment sets them."""
    for name, value in s3_variables(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    for name in S3_IGNORED:
        monkeypatch.delenv(name, raising=False)
    return f"s3://{new_bucket(s3_endpoint)}/dlserve"


@pytest.fixture
def bucket(s3_uri, s3_endpoint):
    """(boto3 client, bucket name, prefix) to look at what dlserve left in the bucket."""
    return s3_client(s3_endpoint), s3_uri.removeprefix("s3://").split("/")[0], "dlserve/"
