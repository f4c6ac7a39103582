"""API keys: 401 without a valid key, 403 with the wrong scope, and keys made by the CLI work."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth import create_key
from app.db.session import make_engine, make_sessionmaker
from app.db.tables import ApiKey
from app.main import create_app
from tests.conftest import assert_problem, upload


def make_key(settings, scopes):
    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as s:
        _, key = create_key(s, scopes, "test")
        s.commit()
    engine.dispose()
    return key


def as_key(client, key):
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("header, needle", [
    (None, "needs an API key"),
    ("Bearer", "must be 'Bearer <key>'"),
    ("Basic dXNlcjpwYXNz", "must be 'Bearer <key>'"),
    ("Bearer dls_000000000000_nope", "not valid"),
    ("Bearer something-else", "not valid"),
])
def test_missing_or_wrong_key_is_401_problem(client, header, needle):
    headers = {"Authorization": header} if header else {}
    client.headers.pop("Authorization")
    r = client.get("/v1/models", headers=headers)
    assert_problem(r, 401, needle)
    assert r.headers["www-authenticate"] == "Bearer"


def test_scopes(client, settings, tiny_onnx):
    predict_only = make_key(settings, ["predict"])
    trainer = make_key(settings, ["predict", "train"])
    client.headers.pop("Authorization")

    r = client.post("/v1/models/m/versions", files={"file": ("m.onnx", tiny_onnx)}, data={"task": "classification"},
                    headers=as_key(client, predict_only))
    body = assert_problem(r, 403, "lacks the 'train' scope")
    assert body["required_scope"] == "train"

    client.headers.update(as_key(client, trainer))
    upload(client, "m", tiny_onnx)
    assert client.put("/v1/models/m/aliases/production", json={"version": 1}).status_code == 200
    # any valid key may read the registry
    assert client.get("/v1/models", headers=as_key(client, predict_only)).status_code == 200


def test_keys_are_stored_hashed(settings):
    key = make_key(settings, ["predict"])
    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as s:
        row = s.scalar(select(ApiKey))
        assert key not in (row.key_hash, row.prefix) and len(row.key_hash) == 64
    engine.dispose()


def test_revoked_key_is_refused(settings, tmp_path):
    from typer.testing import CliRunner

    from app.cli import cli

    key = make_key(settings, ["admin"])
    env = {"DLSERVE_DATABASE_URL": settings.resolved_database_url, "DLSERVE_HOME": str(tmp_path)}
    prefix = key.split("_")[1]
    result = CliRunner().invoke(cli, ["keys", "revoke", "--local", prefix], env=env)
    assert result.exit_code == 0, result.output
    with TestClient(create_app(settings)) as c:
        assert_problem(c.get("/v1/models", headers={"Authorization": f"Bearer {key}"}), 401, "revoked")


def test_health_needs_no_key_and_metrics_does(client):
    client.headers.pop("Authorization")
    for path in ("/healthz", "/readyz", "/v2/health/live"):
        assert client.get(path).status_code == 200, path
    assert_problem(client.get("/metrics"), 401, "API key")
