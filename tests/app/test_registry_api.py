"""The model registry as a client sees it: upload, list, aliases, delete, and what lands on disk."""

import hashlib
import json

import pytest

from tests import onnx_models
from tests.conftest import assert_problem, upload


def test_upload_returns_the_version_with_its_signature(client, tiny_onnx, settings):
    r = client.post("/v1/models/digits/versions", files={"file": ("m.onnx", tiny_onnx)},
                    data={"task": "classification", "metadata": json.dumps({"labels": list("0123456789")})})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "digits" and body["version"] == 1 and body["task"] == "classification"
    assert body["sha256"] == hashlib.sha256(tiny_onnx).hexdigest()
    assert body["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 32, 32]}]
    assert body["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    assert body["metadata"]["labels"][3] == "3"
    assert body["created_at"]
    assert r.headers["location"] == "/v1/models/digits/versions/1"

    # laid out like a Triton model repository, with the bytes that were sent
    folder = settings.resolved_artifact_root / "models" / "digits" / "1"
    assert (folder / "model.onnx").read_bytes() == tiny_onnx
    signature = json.loads((folder / "signature.json").read_text())
    assert signature["inputs"][0]["name"] == "input" and signature["sha256"] == body["sha256"]


def test_versions_count_up_per_name_and_are_never_reused(client, tiny_onnx):
    assert [upload(client, "a", tiny_onnx)["version"] for _ in range(3)] == [1, 2, 3]
    assert upload(client, "b", tiny_onnx)["version"] == 1
    assert client.delete("/v1/models/a/versions/3").status_code == 204
    assert upload(client, "a", tiny_onnx)["version"] == 4


def test_list_and_get(client, tiny_onnx):
    upload(client, "m1", tiny_onnx)
    upload(client, "m1", tiny_onnx)
    upload(client, "m2", tiny_onnx, task="detection")
    listed = client.get("/v1/models").json()
    assert [(m["name"], m["task"], m["latest_version"], m["version_count"]) for m in listed] == [
        ("m1", "classification", 2, 2), ("m2", "detection", 1, 1)]

    model = client.get("/v1/models/m1").json()
    assert [v["version"] for v in model["versions"]] == [1, 2]
    version = client.get("/v1/models/m1/versions/2").json()
    assert version["version"] == 2 and version["inputs"][0]["name"] == "input"

    assert_problem(client.get("/v1/models/nope"), 404, "no model named 'nope'")
    assert_problem(client.get("/v1/models/m1/versions/9"), 404, "has no version 9")


def test_alias_points_at_a_version_and_pins_it(client, tiny_onnx, settings):
    upload(client, "m", tiny_onnx)
    upload(client, "m", tiny_onnx)
    r = client.put("/v1/models/m/aliases/production", json={"version": 1})
    assert r.status_code == 200 and r.json()["version"] == 1
    assert client.get("/v1/models/m").json()["aliases"] == {"production": 1}
    assert client.get("/v1/models/m/versions/1").json()["aliases"] == ["production"]

    body = assert_problem(client.delete("/v1/models/m/versions/1"), 409, "production")
    assert body["aliases"] == ["production"]
    assert (settings.resolved_artifact_root / "models/m/1/model.onnx").exists()

    # moving the alias frees version 1
    assert client.put("/v1/models/m/aliases/production", json={"version": 2}).json()["version"] == 2
    assert client.delete("/v1/models/m/versions/1").status_code == 204
    assert not (settings.resolved_artifact_root / "models/m/1").exists()
    assert_problem(client.get("/v1/models/m/versions/1"), 404)

    assert client.delete("/v1/models/m/aliases/production").status_code == 204
    assert client.get("/v1/models/m").json()["aliases"] == {}
    assert_problem(client.delete("/v1/models/m/aliases/production"), 404, "no alias 'production'")
    assert client.delete("/v1/models/m/versions/2").status_code == 204


def test_alias_errors(client, tiny_onnx):
    upload(client, "m", tiny_onnx)
    assert_problem(client.put("/v1/models/m/aliases/production", json={"version": 7}), 404, "no version 7")
    assert_problem(client.put("/v1/models/x/aliases/production", json={"version": 1}), 404, "no model named 'x'")
    assert_problem(client.put("/v1/models/m/aliases/42", json={"version": 1}), 422, "starting with a letter")
    body = assert_problem(client.put("/v1/models/m/aliases/staging", json={"version": "one"}), 422, "body.version")
    assert body["errors"][0]["field"] == "body.version"
    assert_problem(client.put("/v1/models/m/aliases/staging", json={}), 422, "body.version")


@pytest.mark.parametrize("fields, status, needle", [
    ({"task": "poetry"}, 422, "'poetry' is not a task"),
    ({"task": "classification", "metadata": "{not json"}, 422, "'metadata' is not valid JSON"),
    ({"task": "classification", "metadata": "[1, 2]"}, 422, "must be a JSON object"),
    ({}, 422, "body.task"),
    # batching options are checked here, not when an alias first makes the version load
    ({"task": "classification", "metadata": '{"batching": {"max_batch_size": "lots"}}'}, 422,
     "metadata.batching.max_batch_size must be an integer from 1 to 4096, not 'lots'"),
    ({"task": "classification", "metadata": '{"batching": {"max_batch_size": 0}}'}, 422,
     "metadata.batching.max_batch_size"),
    ({"task": "classification", "metadata": '{"batching": {"max_queue_delay_ms": -1}}'}, 422,
     "metadata.batching.max_queue_delay_ms must be a number"),
    ({"task": "classification", "metadata": '{"batching": {"max_batch": 8}}'}, 422, "unknown key(s) ['max_batch']"),
    ({"task": "classification", "metadata": '{"batching": 8}'}, 422, "metadata.batching must be an object"),
])
def test_upload_field_errors(client, tiny_onnx, fields, status, needle):
    r = client.post("/v1/models/m/versions", files={"file": ("m.onnx", tiny_onnx)}, data=fields)
    assert_problem(r, status, needle)
    assert_problem(client.get("/v1/models/m"), 404)  # nothing half-made


def test_upload_without_a_file_names_the_field(client):
    assert_problem(client.post("/v1/models/m/versions", data={"task": "classification"}), 422, "body.file")


def test_bad_model_name(client, tiny_onnx):
    r = client.post("/v1/models/..hidden/versions", files={"file": ("m.onnx", tiny_onnx)}, data={"task": "fraud"})
    assert_problem(r, 422, "model name '..hidden' is not valid")


@pytest.mark.parametrize("content, needle", [
    (b"this is not a protobuf at all" * 10, "not an ONNX model"),
    (b"", "is empty"),
    (onnx_models.unknown_operator(), "ONNX Runtime cannot load the model"),
])
def test_files_that_are_not_servable_models_are_refused(client, settings, content, needle):
    r = client.post("/v1/models/m/versions", files={"file": ("m.onnx", content)}, data={"task": "classification"})
    detail = assert_problem(r, 422, needle)["detail"]
    # ONNX Runtime's own message names the file it loaded ("Load model from /.../.staging/x.part failed")
    assert str(settings.home.resolve()) not in detail and ".part" not in detail, detail
    assert_problem(client.get("/v1/models/m"), 404)


def test_external_data_is_refused(client, tmp_path):
    content = onnx_models.with_external_data(onnx_models.tiny_classifier(), tmp_path)
    r = client.post("/v1/models/m/versions", files={"file": ("m.onnx", content)}, data={"task": "classification"})
    assert_problem(r, 422, "external data")


def test_a_model_name_keeps_one_task(client, tiny_onnx):
    upload(client, "m", tiny_onnx)
    r = client.post("/v1/models/m/versions", files={"file": ("m.onnx", tiny_onnx)}, data={"task": "fraud"})
    assert_problem(r, 409, "holds classification versions")


def test_model_over_the_size_limit_is_413_and_leaves_nothing(settings, tiny_onnx):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.conftest import ADMIN_KEY

    settings.max_model_bytes = len(tiny_onnx) - 1
    with TestClient(create_app(settings)) as c:
        r = c.post("/v1/models/m/versions", files={"file": ("m.onnx", tiny_onnx)}, data={"task": "classification"},
                   headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert_problem(r, 413, f"limit of {len(tiny_onnx) - 1} bytes")
    assert list((settings.resolved_artifact_root / ".staging").iterdir()) == []
    assert list((settings.resolved_artifact_root / "models").iterdir()) == []


def test_a_model_check_that_overruns_its_time_is_a_422_and_the_next_check_works(tmp_path, tiny_onnx):
    from app.errors import Unprocessable
    from app.registry.onnx_inspect import inspect_model

    path = tmp_path / "m.onnx"
    path.write_bytes(tiny_onnx)
    with pytest.raises(Unprocessable, match="not checked within"):
        inspect_model(path, timeout_s=1e-4)
    assert inspect_model(path)["inputs"][0]["name"] == "input"
