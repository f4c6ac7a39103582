"""Every integer the API takes is bounded (PostgreSQL's INTEGER columns: 32 bits) and answered with a 422
outside its bounds, never a 500 from the database (SQLite fails above 2^63, PostgreSQL from 2^31), and no
answer quotes SQL, an object repr or a server path."""


import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests import onnx_models
from tests.conftest import ADMIN_KEY, assert_problem, upload
from tests.workers.synthetic import stored_zip

HUGE = [2**31, 2**63, 10**30]


def _no_leak(r, settings=None):
    text = r.text
    for needle in ("SELECT", "sqlalchemy", "psycopg", "sqlite3", "Traceback", " object at 0x", "[SQL"):
        assert needle not in text, text
    if settings is not None:
        assert str(settings.home.resolve()) not in text, text


@pytest.mark.parametrize("n", HUGE)
def test_huge_integers_are_422_on_every_route(client, tiny_onnx, n):
    upload(client, "clf", tiny_onnx)
    client.put("/v1/models/clf/aliases/production", json={"version": 1})
    calls = [
        client.get(f"/v1/datasets?offset={n}"),
        client.get(f"/v1/jobs?offset={n}"),
        client.get(f"/v1/models/clf/versions/{n}"),
        client.delete(f"/v1/models/clf/versions/{n}"),
        client.put("/v1/models/clf/aliases/canary", json={"version": n}),
        client.get(f"/v2/models/clf/versions/{n}"),
        client.get(f"/v2/models/clf/versions/{n}/ready"),
        client.post(f"/v2/models/clf/versions/{n}/infer", json={"inputs": []}),
        client.post("/v2/repository/models/clf/load", json={"parameters": {"version": n}}),
        client.post("/v2/repository/models/clf/load", json={"parameters": {"version": str(n)}}),
        client.post(f"/v1/models/clf/predict?version={n}", json={"inputs": [1]}),
        client.post("/predict", json={"model": "clf", "version": n, "inputs": [1]}),
        client.post("/predict", data={"model": "clf", "version": str(n)}, files={"file": ("a.png", b"x")}),
        client.post("/v1/models/clf/predict", json={"inputs": [1], "timeout_ms": n}),
    ]
    for r in calls:
        assert_problem(r, 422)
        _no_leak(r)


def test_version_zero_and_negative_are_422(client, tiny_onnx):
    upload(client, "clf", tiny_onnx)
    for n in (0, -1):
        assert_problem(client.get(f"/v1/models/clf/versions/{n}"), 422)
        assert_problem(client.post(f"/v1/models/clf/predict?version={n}", json={"inputs": [1]}), 422)
        assert_problem(client.post("/v2/repository/models/clf/load", json={"parameters": {"version": n}}), 422)


def test_nul_characters_in_names_and_ids_are_not_database_errors(client):
    for path in ("/v1/models/a%00b", "/v1/models/a%00b/versions/1", "/v1/datasets/a%00b", "/v1/jobs/a%00b",
                 "/v1/jobs/a%00b/metrics", "/v2/models/a%00b"):
        r = client.get(path)
        assert r.status_code in (404, 422), (path, r.text)
        _no_leak(r)
    r = client.get("/v1/jobs?task=a%00b")
    assert_problem(r, 422)


def test_a_file_that_is_not_an_image_is_422_without_an_object_repr(client, tiny_onnx, settings):
    upload(client, "clf", tiny_onnx)
    client.put("/v1/models/clf/aliases/production", json={"version": 1})
    r = client.post("/v1/models/clf/predict", files={"file": ("a.png", b"not an image")})
    assert_problem(r, 422, "not a decodable image")
    _no_leak(r, settings)


def test_a_dataset_error_does_not_name_the_servers_folders(client, settings):
    content = stored_zip({"cat/a.png": b"not an image",
                          "dog/b.png": onnx_models.png(__import__("numpy").zeros((4, 4), "uint8"))})
    r = client.post("/v1/datasets", files={"file": ("d.zip", content)}, data={"task": "classification"})
    assert_problem(r, 422)
    _no_leak(r, settings)


def test_an_unreachable_database_is_503_with_retry_after_and_no_sql(tmp_path):
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path}/missing/dir/db.sqlite",
                        admin_key=ADMIN_KEY, _env_file=None)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        r = c.get("/v1/models", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert_problem(r, 503, "database")
    assert int(r.headers["retry-after"]) >= 1
    _no_leak(r, settings)
    assert str(tmp_path) not in r.text


def test_a_version_that_fails_to_load_is_503_without_the_servers_path(client, tiny_onnx, settings):
    upload(client, "clf", tiny_onnx)
    (artifact,) = settings.resolved_artifact_root.rglob("model.onnx")
    artifact.write_bytes(b"no longer a model")
    r = client.post("/v1/models/clf/predict?version=1", json={"inputs": [1]})
    assert_problem(r, 503, "failed to load")
    assert "retry-after" in r.headers
    _no_leak(r, settings)
    assert str(settings.resolved_artifact_root) not in r.text
