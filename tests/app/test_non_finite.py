"""Numbers past float32, NaN and infinities: refused with a 422 naming the field wherever a number goes in,
and never answered as a success with null where a number belongs."""

from __future__ import annotations

import struct

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from models.common.errors import InputError
from models.common.numbers import finite_float32, first_non_finite_index, first_unrepresentable
from tests import onnx_models
from tests.conftest import assert_item_error, assert_problem, upload

FEATURES = [f"V{i}" for i in range(1, 9)]


def linear_fraud(weight: float) -> bytes:
    """features [batch, 8] -> scores [batch, 9] = features @ W (score, then 8 contributions)."""
    w = numpy_helper.from_array(np.full((8, 9), weight, np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "W"], ["scores"])], "fraud",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 9])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx_models.to_bytes(model)


def _serve(client, name: str, model: bytes, task: str, metadata: str | None = None) -> None:
    upload(client, name, model, task=task, **({"metadata": metadata} if metadata else {}))
    assert client.put(f"/v1/models/{name}/aliases/production", json={"version": 1}).status_code == 200


def _fraud(client, weight: float = 0.01) -> None:
    import json
    _serve(client, "fx", linear_fraud(weight), "fraud", json.dumps({"features": FEATURES, "threshold": 0.5}))


def _record(**over) -> dict:
    return {"features": {f: over.get(f, 0.1) for f in FEATURES}}


@pytest.mark.parametrize("value", [3.5e38, 1e308, -1e39, 10**40])
def test_fraud_features_past_float32_are_a_422_naming_the_feature(client, value):
    _fraud(client)
    r = client.post("/v1/models/fx/predict", json={"inputs": [_record(), _record(V3=value)]})
    assert_item_error(r, 1, 422, "inputs[1].features.V3", "float32")  # one record's fault: the other is scored
    assert "score" in r.json()["outputs"][0]
    body = assert_problem(client.post("/v1/models/fx/predict", json={"inputs": [_record(V3=value)]}), 422)
    assert body["field"] == "inputs[0].features.V3"


def test_a_non_finite_answer_is_never_a_success(client):
    _fraud(client, weight=1e30)  # finite inputs, but 1e10 * 1e30 overflows float32 in the model
    r = client.post("/v1/models/fx/predict", json={"inputs": [_record(), _record(V1=1e10)]})
    body = assert_problem(r, 422, "inputs[1]", "not finite")
    assert body["field"] == "inputs[1]" and body["output"].startswith("outputs[1].")
    assert client.post("/v1/models/fx/predict", json={"inputs": [_record()]}).status_code == 200


@pytest.mark.parametrize("data, needle", [([1e308, 0, 0, 0], "input 'x'"), ([1e39, 0, 0, 0], "input 'x'")])
def test_v2_json_numbers_past_fp32_are_a_422_naming_the_tensor(client, data, needle):
    _serve(client, "dbl", onnx_models.doubler(), "translation")
    r = client.post("/v2/models/dbl/infer", json={"inputs": [
        {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": data}]})
    body = assert_problem(r, 422, needle, "NaN, infinite or beyond FP32")
    assert body["error"] == body["detail"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_v2_binary_nan_and_infinity_are_a_422(client, bad):
    _serve(client, "dbl", onnx_models.doubler(), "translation")
    head = (b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", '
            b'"parameters": {"binary_data_size": 16}}]}')
    r = client.post("/v2/models/dbl/infer", content=head + struct.pack("<4f", 1, 2, bad, 4),
                    headers={"Inference-Header-Content-Length": str(len(head)),
                             "Content-Type": "application/octet-stream"})
    assert_problem(r, 422, "input 'x'", "flat index 2")


def test_v2_a_non_finite_output_is_a_422_naming_it(client):
    _serve(client, "dbl", onnx_models.doubler(), "translation")
    r = client.post("/v2/models/dbl/infer", json={"inputs": [
        {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 3e38, 0, 0]}]})
    assert_problem(r, 422, "output 'y'", "not finite")


@pytest.mark.parametrize("raw", [b'{"noise_std": Infinity}', b'{"contractive_weight": NaN}', b'{"noise_std": 1e999}',
                                 b'{"lr": -Infinity}'])
def test_job_configs_refuse_nan_and_infinity_at_submit(client, raw):
    body = b'{"task": "fraud", "dataset_id": "nope", "config": ' + raw + b"}"
    r = client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    problem = assert_problem(r, 422, "config.", "finite number")
    assert problem["field"].startswith("config.")


def test_the_numbers_helper_names_fields():
    assert finite_float32(1.5, "f") == 1.5
    for bad in (3.5e38, float("nan"), float("inf"), True, "1", 10**400):
        with pytest.raises(InputError) as e:
            finite_float32(bad, "inputs[0].x")
        assert e.value.field == "inputs[0].x"
    assert first_non_finite_index(np.array([[1.0], [np.inf]], np.float32)) == 1
    assert first_non_finite_index(np.array([1.0, 2.0], np.float32)) is None
    assert first_unrepresentable({"a": [1, {"b": 1e39}]}, "inputs[2]") == "inputs[2].a[1].b"
    assert first_unrepresentable({"a": "1e39", "b": True}, "inputs[0]") is None


def test_onnx_models_builder_is_valid():
    onnx.checker.check_model(onnx.load_from_string(linear_fraud(1.0)))
