"""`dlserve keys ...` against the real database, and the keys it prints against the real API."""

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from app.main import create_app
from tests.conftest import assert_problem


def run(settings, *args):
    env = {"DLSERVE_DATABASE_URL": settings.resolved_database_url, "DLSERVE_HOME": str(settings.home)}
    return CliRunner().invoke(cli, list(args), env=env)


def test_keys_create_prints_a_key_that_works_with_its_scopes(settings, tiny_onnx):
    result = run(settings, "keys", "create", "--scopes", "predict,train", "--name", "ci")
    assert result.exit_code == 0, result.output
    key = result.output.strip()
    assert key.startswith("dls_")
    with TestClient(create_app(settings)) as c:
        h = {"Authorization": f"Bearer {key}"}
        assert c.get("/v1/models", headers=h).status_code == 200
        r = c.post("/v1/models/m/versions", files={"file": ("m.onnx", tiny_onnx)}, data={"task": "fraud"}, headers=h)
        assert r.status_code == 201

    listed = run(settings, "keys", "list")
    assert "predict,train" in listed.output and "ci" in listed.output and key not in listed.output


def test_keys_create_refuses_unknown_scopes(settings):
    result = run(settings, "keys", "create", "--scopes", "predict,root")
    assert result.exit_code == 2
    assert "predict, train, admin" in result.output


def test_admin_key_from_settings_is_admin(settings):
    with TestClient(create_app(settings)) as c:
        assert c.get("/v1/models", headers={"Authorization": f"Bearer {settings.admin_key}"}).status_code == 200
        assert_problem(c.get("/v1/models", headers={"Authorization": f"Bearer {settings.admin_key}x"}), 401)
