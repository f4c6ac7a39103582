"""GET /v1/families: each family's formats, config fields (for forms) and best metric, read from the code."""

import dataclasses

import pytest
from fastapi.testclient import TestClient

import models
from app.main import create_app
from models import TASKS, family
from tests.app.test_web_session import make_key
from tests.conftest import ADMIN_KEY, assert_problem


def test_every_family_is_described_as_its_code_declares_it(client):
    r = client.get("/v1/families")
    assert r.status_code == 200, r.text
    found = {f["task"]: f for f in r.json()}
    assert list(found) == list(TASKS)
    for task, described in found.items():
        contract = family(task)
        assert {f["name"]: f["description"] for f in described["formats"]} == dict(contract.formats)
        cfg = contract.config()
        fields = {f.name: f for f in dataclasses.fields(contract.config)}
        assert [f["name"] for f in described["config"]] == list(fields)
        for f in described["config"]:
            assert f["doc"] == fields[f["name"]].metadata["doc"] != ""
            declared = fields[f["name"]]
            default = declared.default if declared.default is not dataclasses.MISSING else declared.default_factory()
            assert f["default"] == default
            if f["default"] is not None:  # None is 'decided later' (Config fills it in from the data or the arch)
                assert f["default"] == getattr(cfg, f["name"]), (task, f["name"])
        assert described["best_metric"] == {"key": contract.best_metric[0], "goal": contract.best_metric[1]}


def test_the_classification_form_gets_choices_kinds_and_nullability(client):
    classification = next(f for f in client.get("/v1/families").json() if f["task"] == "classification")
    fields = {f["name"]: f for f in classification["config"]}
    assert fields["arch"]["choices"] == ["lenet", "resnet", "airbench"] and fields["arch"]["kind"] == "string"
    assert fields["arch"]["default"] == "lenet" and not fields["arch"]["nullable"]
    assert fields["channels"]["choices"] == [1, 3] and fields["channels"]["kind"] == "integer"
    epochs = fields["epochs"]
    assert epochs["kind"] == "integer" and epochs["nullable"] and epochs["choices"] is None
    assert fields["lr"]["kind"] == "number" and fields["amp"]["kind"] == "boolean" and fields["amp"]["default"] is True
    assert classification["best_metric"] == {"key": "val_accuracy", "goal": "max"}


@pytest.mark.parametrize("task", list(models.BUILT_IN))
def test_each_family_names_a_best_metric_its_runs_record(task):
    key, goal = family(task).best_metric
    assert goal in ("max", "min") and key.startswith("val_")


def test_a_read_key_sees_the_families_and_a_predict_key_does_not(client, settings):
    assert client.get("/v1/families", headers={"Authorization": f"Bearer {make_key(settings, ['read'])}"}) \
        .status_code == 200
    assert_problem(client.get("/v1/families", headers={"Authorization": f"Bearer {make_key(settings, ['predict'])}"}),
                   403, "'read' scope")


def test_a_family_registered_by_setting_is_listed(settings):
    settings.families = "regression=tests.toyfamily"
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as c:
            c.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
            toy = next(f for f in c.get("/v1/families").json() if f["task"] == "regression")
        assert toy["best_metric"] == {"key": "val_mse", "goal": "min"}
        assert [f["name"] for f in toy["formats"]] == ["csv"]
    finally:
        models.unregister("regression")


def test_a_distributed_family_offers_devices_and_each_gate_names_what_it_quantises(client):
    described = {f["task"]: f for f in client.get("/v1/families").json()}
    for task, f in described.items():
        contract = family(task)
        assert f["distributed"] is contract.distributed
        keys = {k["name"]: k for k in f["platform_keys"]}
        assert ("devices" in keys) is contract.distributed, task
        if contract.quantisation is not None:
            want = contract.quantisation.op_types
            assert f["quantisation"]["op_types"] == (None if want is None else list(want)), task
    devices = {k["name"]: k for k in described["classification"]["platform_keys"]}["devices"]
    assert devices["kind"] == "integer" and devices["default"] == 1 and devices["maximum"] == 64
    assert described["detection"]["quantisation"]["op_types"] == ["Conv", "MatMul", "Gemm"]
    assert described["classification"]["quantisation"]["op_types"] is None
    assert not described["fraud"]["distributed"] and described["fraud"]["platform_keys"] == []
