"""/readyz tells the truth about the database, and its details only to a key holder; /metrics counts
requests by route template, for key holders (or anyone, when DLSERVE_METRICS_PUBLIC says so)."""

import time

import pytest
from fastapi.testclient import TestClient

from app.db import migrate
from app.main import create_app
from app.settings import Settings
from tests.conftest import ADMIN_KEY, BACKENDS, assert_problem, upload

H = {"Authorization": f"Bearer {ADMIN_KEY}"}


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
    settings = Settings(home=tmp_path, database_url=empty_database_url, admin_key=ADMIN_KEY, _env_file=None)
    with TestClient(create_app(settings)) as c:
        r = c.get("/readyz", headers=H)
        body = assert_problem(r, 503, "dlserve db upgrade")
        assert r.headers["retry-after"]
        assert body["checks"]["artifacts"] == "ok"
        anonymous = c.get("/readyz")
        assert "checks" not in assert_problem(anonymous, 503) and anonymous.headers["retry-after"]
        assert "migration" not in anonymous.text
        migrate.upgrade(empty_database_url)
        assert c.get("/readyz").status_code == 200


def test_not_ready_when_the_database_is_unreachable(tmp_path):
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    settings = Settings(home=tmp_path, database_url=url, admin_key=ADMIN_KEY, _env_file=None)
    with TestClient(create_app(settings)) as c:
        assert_problem(c.get("/readyz", headers=H), 503, "database")
        assert_problem(c.get("/readyz"), 503, "not ready")
        assert c.get("/healthz").json() == {"status": "ok"}


def test_metrics_count_requests_by_route_template(client, tiny_onnx):
    client.get("/v1/models/a")
    client.get("/v1/models/b")
    client.get("/v1/unknown")
    text = client.get("/metrics").text
    assert 'dlserve_http_requests_total{method="GET",route="/v1/models/{name}",status="404"} 2.0' in text
    assert 'route="unmatched",status="404"' in text
    assert 'dlserve_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/v1/models/{name}"}' in text


def test_without_a_key_readyz_says_ready_and_nothing_more(client, tiny_onnx):
    upload(client, "secret-model-name", tiny_onnx)
    client.put("/v1/models/secret-model-name/aliases/production", json={"version": 1})
    with TestClient(create_app(client.app.state.settings)) as anonymous:
        deadline = time.monotonic() + 10
        while (r := anonymous.get("/readyz")).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert r.json() == {"status": "ready"}
        assert "1 loaded" in anonymous.get("/readyz", headers=H).json()["checks"]["models"]
        assert_problem(anonymous.get("/readyz", headers={"Authorization": "Bearer dls_wrong_key"}), 401)
        assert_problem(anonymous.get("/metrics"), 401, "DLSERVE_METRICS_PUBLIC")
        assert "secret-model-name" in anonymous.get("/metrics", headers=H).text


def test_metrics_can_be_opened_for_a_scraper(settings):
    with TestClient(create_app(settings.model_copy(update={"metrics_public": True}))) as c:
        assert "dlserve_http_requests_total" in c.get("/metrics").text
