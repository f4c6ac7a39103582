"""/readyz tells the truth about the database; /metrics counts requests by route template."""

import time

import pytest
from fastapi.testclient import TestClient

from app.db import migrate
from app.main import create_app
from app.settings import Settings
from tests.conftest import BACKENDS, assert_problem


def test_ready_when_migrated(client):
    # The first look at the registry's aliases runs in the background after start-up (503 until it is
    # done, even when there is nothing to load): allow it a moment.
    deadline = time.monotonic() + 10
    while (r := client.get("/readyz")).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert r.status_code == 200, r.text
    assert r.json()["checks"]["database"] == f"ok (migration {migrate.head_revision()})"


@pytest.mark.parametrize("empty_database_url", BACKENDS, indirect=True)
def test_not_ready_until_migrated(empty_database_url, tmp_path):
    settings = Settings(home=tmp_path, database_url=empty_database_url, _env_file=None)
    with TestClient(create_app(settings)) as c:
        r = c.get("/readyz")
        body = assert_problem(r, 503, "dlserve db upgrade")
        assert r.headers["retry-after"]
        assert body["checks"]["artifacts"] == "ok"
        migrate.upgrade(empty_database_url)
        assert c.get("/readyz").status_code == 200


def test_not_ready_when_the_database_is_unreachable(tmp_path):
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    with TestClient(create_app(Settings(home=tmp_path, database_url=url, _env_file=None))) as c:
        assert_problem(c.get("/readyz"), 503, "database")
        assert c.get("/healthz").json() == {"status": "ok"}


def test_metrics_count_requests_by_route_template(client, tiny_onnx):
    client.get("/v1/models/a")
    client.get("/v1/models/b")
    client.get("/v1/unknown")
    text = client.get("/metrics").text
    assert 'dlserve_http_requests_total{method="GET",route="/v1/models/{name}",status="404"} 2.0' in text
    assert 'route="unmatched",status="404"' in text
    assert 'dlserve_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/v1/models/{name}"}' in text
