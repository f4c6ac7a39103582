"""The OpenAPI document is complete enough for Swagger UI to authorize and for a fuzzer to hold the
service to it: security, request bodies, problem+json answers, enums from the family registry, bounds."""

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient

from app.api.deps import AdminKey
from app.api.openapi import INT32_MAX, dataset_formats
from app.db.tables import RUN_STATUSES
from app.main import create_app
from app.registry.service import ALIAS_RE
from models import TASKS, family_part

METHODS = ("get", "put", "post", "delete", "patch")


def _ops(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def test_security_scheme_and_per_operation_security(client):
    doc = client.get("/openapi.json").json()
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    ops = {(p, m): op for p, m, op in _ops(doc)}
    assert ops[("/healthz", "get")]["security"] == []
    assert ops[("/v1/models", "get")]["security"] == [{"bearer": []}, {"session": []}]
    cookie = doc["components"]["securitySchemes"]["session"]
    assert (cookie["type"], cookie["in"], cookie["name"]) == ("apiKey", "cookie", "dlserve_session")
    assert ops[("/v1/session", "post")]["security"] == [] and ops[("/v1/session", "get")]["security"] == [
        {"session": []}]
    for (path, method), op in ops.items():
        assert not any(p["name"].lower() == "authorization" for p in op.get("parameters", [])), path
        if {"bearer": []} in op["security"]:
            assert {"401", "403"} <= set(op["responses"]), (path, method)


def test_every_post_declares_its_request_body(client):
    doc = client.get("/openapi.json").json()
    missing = [(p, m) for p, m, op in _ops(doc) if m in ("post", "put") and "requestBody" not in op
               and not p.endswith(("/cancel", "/unload", "/revoke", "/rollback"))]
    assert missing == []
    predict = doc["paths"]["/v1/models/{name}/predict"]["post"]["requestBody"]["content"]
    assert set(predict) == {"application/json", "multipart/form-data"}
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    assert set(infer) == {"application/json", "application/octet-stream"}
    schemas = doc["components"]["schemas"]
    assert schemas["InferenceRequest"]["required"] == ["inputs"]
    assert schemas["PredictRequest"]["properties"]["timeout_ms"]["maximum"] == 60_000


def test_error_answers_are_problem_json_and_500_is_never_declared(client):
    doc = client.get("/openapi.json").json()
    assert set(doc["components"]["schemas"]["Problem"]["required"]) == {"type", "title", "status", "detail",
                                                                        "instance"}
    for path, method, op in _ops(doc):
        assert "500" not in op["responses"], path
        assert "422" in op["responses"] or ("{" not in path and "requestBody" not in op and "parameters" not in op)
        for status, answer in op["responses"].items():
            if int(status) >= 400:
                assert answer["content"] == {"application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"}}}, (path, method, status)
            if status in ("429", "503"):
                assert "Retry-After" in answer["headers"], (path, method, status)


def test_enums_come_from_the_family_registry_and_names_declare_their_pattern(client):
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert schemas["VersionOut"]["properties"]["task"]["enum"] == list(TASKS)
    assert schemas["JobOut"]["properties"]["status"]["enum"] == list(RUN_STATUSES)
    assert schemas["JobIn"]["properties"]["task"]["enum"] == list(TASKS)
    formats = {f for t in TASKS for f in getattr(family_part(t, "data"), "FORMATS", {})}
    assert set(schemas["DatasetOut"]["properties"]["format"]["enum"]) == formats == set(dataset_formats())
    alias = next(p for p in doc["paths"]["/v1/models/{name}/aliases/{alias}"]["put"]["parameters"]
                 if p["name"] == "alias")
    assert alias["schema"]["pattern"] == ALIAS_RE.pattern


def test_every_integer_parameter_is_bounded_within_int32(client):
    doc = client.get("/openapi.json").json()
    for path, _method, op in _ops(doc):
        for p in op.get("parameters", []):
            for s in [p["schema"], *p["schema"].get("anyOf", [])]:
                if s.get("type") == "integer":
                    assert 0 <= s["minimum"] and s["maximum"] <= INT32_MAX, (path, p["name"])


def test_a_route_added_later_is_covered_without_an_edit(settings):
    app = create_app(settings)
    extra = APIRouter()

    @extra.get("/v1/keys/{key_id}")
    def get_key(key_id: int, _: AdminKey) -> dict:
        return {}

    @extra.get("/open")
    def open_route(x: Annotated[int, Depends(lambda: 1)]) -> dict:
        return {}

    app.include_router(extra)
    doc = app.openapi()
    op = doc["paths"]["/v1/keys/{key_id}"]["get"]
    assert op["security"] == [{"bearer": []}, {"session": []}] and {"401", "403", "404", "422"} <= set(op["responses"])
    assert doc["paths"]["/open"]["get"]["security"] == []


def test_options_and_405_give_every_method_the_path_takes(client):
    r = client.options("/v1/models/m/versions/1")
    assert r.status_code == 204
    assert set(r.headers["allow"].split(", ")) == {"GET", "DELETE", "OPTIONS"}
    r = client.put("/v1/models/m/versions/1")
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "DELETE", "OPTIONS"}
    assert set(client.patch("/v1/models/m/aliases/a").headers["allow"].split(", ")) == {"PUT", "DELETE", "OPTIONS"}


def test_swagger_ui_loads(client):
    assert client.get("/docs").status_code == 200
    assert TestClient  # the document is served to it at /openapi.json
