"""Every error is problem+json with a request id; limits give 413; validation names the field."""

from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import ADMIN_KEY, assert_problem


def test_unknown_route_is_404_problem(client):
    assert_problem(client.get("/v1/nothing-here"), 404, "no route GET /v1/nothing-here")


def test_wrong_method_is_405_problem(client):
    assert_problem(client.patch("/v1/models"), 405, "PATCH is not allowed")


def test_request_id_is_echoed_and_used_as_instance(client):
    r = client.get("/v1/models/none", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert assert_problem(r, 404)["instance"] == "abc-123"
    # an id that could inject into logs or headers is replaced, not echoed
    r = client.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"})
    assert r.headers["x-request-id"] != "bad id\twith tab" and len(r.headers["x-request-id"]) == 32


def test_json_body_over_the_limit_is_413(settings):
    settings.max_request_bytes = 2048
    with TestClient(create_app(settings)) as c:
        h = {"Authorization": f"Bearer {ADMIN_KEY}"}
        r = c.put("/v1/models/m/aliases/production", content=b'{"version": 1' + b" " * 4096 + b"}", headers=h)
        body = assert_problem(r, 413, "over the limit of 2048 bytes")
        assert body["limit_bytes"] == 2048

        # a chunked body declares no length; it is cut off as it streams in
        def chunks():
            for _ in range(10):
                yield b" " * 1024

        r = c.put("/v1/models/m/aliases/production", content=chunks(), headers=h)
        assert_problem(r, 413, "over the limit of 2048 bytes")


def test_upload_routes_have_their_own_larger_limit(settings, tiny_onnx):
    settings.max_request_bytes = 2048  # far below the model's size
    with TestClient(create_app(settings)) as c:
        r = c.post("/v1/models/m/versions", files={"file": ("m.onnx", tiny_onnx)}, data={"task": "classification"},
                   headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code == 201, r.text


def test_malformed_json_is_422_problem(client):
    r = client.put("/v1/models/m/aliases/production", content=b"{nope", headers={"Content-Type": "application/json"})
    assert_problem(r, 422, "JSON")
