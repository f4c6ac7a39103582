"""The inference routes' own lane (app/api/hot_path.py) answers exactly as FastAPI's routes do.

Each request below goes to two apps on one database: the app as it runs, and the same app with the lane
taken out, so FastAPI's routes answer everything. Status, content type, the problem's members and the
answer must agree; so must the metrics' route labels."""

import base64
import gzip
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api import deps
from app.api.hot_path import HotPaths
from app.api.openapi import api_routes
from app.main import create_app
from tests import onnx_models
from tests.conftest import ADMIN_KEY, upload

META = {"labels": [f"c{i}" for i in range(10)],
        "preprocessing": {"size": [32, 32], "channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3}}
PNG = base64.b64encode(onnx_models.png(np.full((32, 32, 3), 90, np.uint8))).decode()
X = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
V2 = {"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": X.ravel().tolist()}]}
PREDICT = {"inputs": [{"image": PNG}], "parameters": {"top_k": 2}}
JSON = {"Content-Type": "application/json"}


def _without_lane(settings):
    app = create_app(settings)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not HotPaths]
    return app


@pytest.fixture
def pair(settings, tiny_onnx):
    with TestClient(create_app(settings), raise_server_exceptions=False) as hot, \
            TestClient(_without_lane(settings), raise_server_exceptions=False) as plain:
        for c in (hot, plain):
            c.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        upload(hot, "clf", tiny_onnx, metadata=json.dumps(META))
        hot.put("/v1/models/clf/aliases/production", json={"version": 1})
        read_key = hot.post("/v1/keys", json={"scopes": ["read"], "name": "reader"}).json()["key"]
        yield hot, plain, read_key


def _cases(read_key: str) -> list[tuple[str, str, dict, bytes | None, dict | None]]:
    """(name, path, headers, raw body, json body)"""
    gz = gzip.compress(json.dumps(V2).encode())
    return [
        ("v2", "/v2/models/clf/infer", {}, None, V2),
        ("v2 version", "/v2/models/clf/versions/1/infer", {}, None, V2),
        ("v2 gzip", "/v2/models/clf/infer", {**JSON, "Content-Encoding": "gzip"}, gz, None),
        ("v2 unknown encoding", "/v2/models/clf/infer", {**JSON, "Content-Encoding": "br"}, b"{}", None),
        ("v2 version not a number", "/v2/models/clf/versions/one/infer", {}, None, V2),
        ("v2 version 0", "/v2/models/clf/versions/0/infer", {}, None, V2),
        ("v2 version past int32", "/v2/models/clf/versions/99999999999/infer", {}, None, V2),
        ("v2 version not loaded", "/v2/models/clf/versions/7/infer", {}, None, V2),
        ("v2 unknown model", "/v2/models/nope/infer", {}, None, V2),
        ("v2 not json", "/v2/models/clf/infer", JSON, b"{nope", None),
        ("v2 wrong shape", "/v2/models/clf/infer", {}, None,
         {"inputs": [{**V2["inputs"][0], "shape": [2, 3, 32, 32]}]}),
        ("v2 no key", "/v2/models/clf/infer", {"Authorization": ""}, None, V2),
        ("v2 bad key", "/v2/models/clf/infer", {"Authorization": "Bearer dls_x_y"}, None, V2),
        ("v2 read key", "/v2/models/clf/infer", {"Authorization": f"Bearer {read_key}"}, None, V2),
        ("predict", "/v1/models/clf/predict", {}, None, PREDICT),
        ("predict query", "/v1/models/clf/predict?version=1", {}, None, PREDICT),
        ("predict bad query", "/v1/models/clf/predict?version=zero", {}, None, PREDICT),
        ("predict by body", "/predict", {}, None, {**PREDICT, "model": "clf"}),
        ("predict by body, no model", "/predict", {}, None, PREDICT),
        ("predict empty inputs", "/v1/models/clf/predict", {}, None, {"inputs": []}),
        ("predict bad item", "/v1/models/clf/predict", {}, None, {"inputs": [{"image": 5}]}),
        ("predict bad top_k", "/v1/models/clf/predict", {}, None, {**PREDICT, "parameters": {"top_k": -1}}),
        ("predict form", "/v1/models/clf/predict", {"Content-Type": "application/x-www-form-urlencoded"},
         b"a=b", None),
        ("predict read key", "/v1/models/clf/predict", {"Authorization": f"Bearer {read_key}"}, None, PREDICT),
        ("predict too large", "/v1/models/clf/predict", {**JSON, "Content-Length": str(2**40)}, b"{}", None),
    ]


def _answer(r) -> tuple:
    ctype = r.headers.get("content-type", "")
    body = r.json() if "json" in ctype else r.content
    if isinstance(body, dict):
        assert body.pop("instance", r.headers["x-request-id"]) == r.headers["x-request-id"]
    return r.status_code, ctype, body, r.headers.get("retry-after"), r.headers.get("allow")


def test_the_lane_answers_as_fastapis_routes(pair):
    hot, plain, read_key = pair
    statuses = set()
    for name, path, headers, raw, body in _cases(read_key):
        answers = []
        for c in (hot, plain):
            kwargs = {"content": raw} if raw is not None else {"json": body}
            answers.append(_answer(c.post(path, headers=headers, **kwargs)))
        assert answers[0] == answers[1], name
        statuses.add(answers[0][0])
    assert statuses >= {200, 401, 403, 404, 413, 415, 422}


def test_multipart_predict_through_the_lane(pair):
    hot, plain, _ = pair
    files = [("file", ("a.png", base64.b64decode(PNG), "image/png"))] * 2
    answers = [_answer(c.post("/v1/models/clf/predict", files=files)) for c in (hot, plain)]
    assert answers[0] == answers[1] and answers[0][0] == 200 and len(answers[0][2]["outputs"]) == 2


def test_the_lane_is_counted_under_the_routes_templates(pair):
    hot, plain, _ = pair
    for c in (hot, plain):
        assert c.post("/v2/models/clf/infer", json=V2).status_code == 200
        assert c.post("/v1/models/clf/predict", json=PREDICT).status_code == 200
        assert c.post("/v2/models/nope/infer", json=V2).status_code == 404
    texts = [c.get("/metrics").text for c in (hot, plain)]
    for line in ('dlserve_http_requests_total{method="POST",route="/v2/models/{name}/infer",status="200"} 1.0',
                 'dlserve_http_requests_total{method="POST",route="/v1/models/{name}/predict",status="200"} 1.0',
                 'dlserve_http_requests_total{method="POST",route="/v2/models/{name}/infer",status="404"} 1.0'):
        assert line in texts[0] and line in texts[1], line


def test_every_hot_route_is_a_documented_route_with_its_scope(settings):
    from app.api import predict, v2

    documented = {}
    for path, methods, route in api_routes(create_app(settings)):
        if "POST" in methods:
            documented[path] = {getattr(d.call, "scope", None) for d in route.dependant.dependencies
                                if deps.takes_key(d.call)}
    for hot_route in predict.HOT_ROUTES + v2.HOT_ROUTES:
        assert documented.get(hot_route.path) == {hot_route.scope}, hot_route.path
