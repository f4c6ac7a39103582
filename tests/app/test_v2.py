"""The Open Inference Protocol, driven by tritonclient's HTTP client, unchanged, over a real socket."""

import time

import numpy as np
import pytest
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

from tests import onnx_models
from tests.conftest import ADMIN_KEY, upload
from tests.live_server import live_server


def _fresh() -> dict:
    # tritonclient writes Inference-Header-Content-Length into the headers dict it is given, so a
    # shared dict would carry a stale length into the next request: a fresh one each call.
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def triton(client, settings, tiny_onnx):
    upload(client, "tiny", tiny_onnx)
    upload(client, "tiny", onnx_models.to_bytes(onnx_models.tiny_classifier(seed=3)))
    client.put("/v1/models/tiny/aliases/production", json={"version": 1})
    upload(client, "echo", onnx_models.echo_all_types(), task="translation")
    with live_server(settings) as url:
        c = th.InferenceServerClient(url=url)
        deadline = time.monotonic() + 30  # warming the aliased versions takes longer on a loaded machine
        while not c.is_server_ready(headers=_fresh()) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield c
        c.close()


def test_health_needs_no_key_and_names_no_model(triton, settings):
    # as Triton and KServe: a probe (or tritonclient's is_server_live()) sends no key
    assert triton.is_server_live() and triton.is_server_ready()
    with pytest.raises(InferenceServerException):
        triton.get_server_metadata()  # everything else still needs one


def test_server_and_model_metadata(triton):
    assert triton.is_server_live(headers=_fresh()) and triton.is_server_ready(headers=_fresh())
    assert triton.get_server_metadata(headers=_fresh())["extensions"] == ["binary_tensor_data", "model_repository"]
    meta = triton.get_model_metadata("tiny", headers=_fresh())
    assert meta["versions"] == ["1"]  # the production alias
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 32, 32]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    assert triton.get_model_metadata("tiny", "2", headers=_fresh())["versions"] == ["2"]
    assert triton.get_model_metadata("echo", headers=_fresh())["versions"] == ["1"]  # no alias: the latest
    assert triton.is_model_ready("tiny", headers=_fresh())  # preloaded: production alias
    assert not triton.is_model_ready("tiny", "2", headers=_fresh())  # loads on first request


@pytest.mark.parametrize("binary_in", [False, True])
@pytest.mark.parametrize("binary_out", [False, True])
def test_infer_matches_onnxruntime(triton, tiny_onnx, binary_in, binary_out):
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    inp = th.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary_in)
    wanted = [th.InferRequestedOutput("logits", binary_data=binary_out)]
    result = triton.infer("tiny", [inp], headers=_fresh(), outputs=wanted)
    want = ort.InferenceSession(tiny_onnx).run(None, {"input": x})[0]
    np.testing.assert_allclose(result.as_numpy("logits"), want, rtol=1e-5, atol=1e-6)
    assert result.get_response()["model_version"] == "1"


def test_every_datatype_round_trips(triton):
    data = {
        "f32": np.array([[1.5, -2], [3, 4]], np.float32), "i64": np.array([1, -(2**40)], np.int64),
        "i32": np.array([7, -7], np.int32), "b": np.array([True, False]), "f16": np.array([0.5, -1], np.float16),
        "s": np.array([b"hello", "w\u00f6rld".encode()], dtype=object),
    }
    types = {"f32": "FP32", "i64": "INT64", "i32": "INT32", "b": "BOOL", "f16": "FP16", "s": "BYTES"}
    for binary in (False, True):
        inputs = []
        for name, array in data.items():
            i = th.InferInput(name, list(array.shape), types[name])
            i.set_data_from_numpy(array, binary_data=binary)
            inputs.append(i)
        outputs = [th.InferRequestedOutput(f"{n}_out", binary_data=binary) for n in data]
        result = triton.infer("echo", inputs, headers=_fresh(), outputs=outputs)
        for name, array in data.items():
            got = result.as_numpy(f"{name}_out")
            if name == "s":
                assert [bytes(v) if not isinstance(v, str) else v.encode() for v in got] == list(array)
            else:
                np.testing.assert_array_equal(got, array)
                assert got.dtype == array.dtype


def test_explicit_version_loads_on_first_request(triton):
    x = np.zeros((1, 3, 32, 32), np.float32)
    inp = th.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    assert triton.infer("tiny", [inp], model_version="2", headers=_fresh()).get_response()["model_version"] == "2"
    assert triton.is_model_ready("tiny", "2", headers=_fresh())


@pytest.mark.parametrize("name, shape, datatype, needle", [
    ("wrong", [1, 3, 32, 32], "FP32", "input 'wrong' is not an input of this model; it takes input FP32"),
    ("input", [1, 3, 32, 32], "INT64", "has datatype INT64, the model expects FP32"),
    ("input", [1, 3, 16, 16], "FP32", "has shape [1, 3, 16, 16], the model expects [-1, 3, 32, 32]"),
    ("input", [1, 3, 32], "FP32", "the model expects [-1, 3, 32, 32]"),
])
def test_wrong_tensors_are_422_naming_the_tensor(triton, name, shape, datatype, needle):
    dtype = np.int64 if datatype == "INT64" else np.float32
    inp = th.InferInput(name, shape, datatype)
    inp.set_data_from_numpy(np.zeros(shape, dtype))
    with pytest.raises(InferenceServerException) as e:
        triton.infer("tiny", [inp], headers=_fresh())
    assert e.value.status() == "422" and needle in e.value.message()


def test_unknown_model_and_version_are_404(triton):
    inp = th.InferInput("input", [1, 3, 32, 32], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 3, 32, 32), np.float32))
    for kwargs in ({"model_name": "ghost"}, {"model_name": "tiny", "model_version": "9"}):
        with pytest.raises(InferenceServerException) as e:
            triton.infer(inputs=[inp], headers=_fresh(), **kwargs)
        assert e.value.status() == "404"


def test_repository_index_load_and_unload(triton):
    index = {(m["name"], m["version"]): m["state"] for m in triton.get_model_repository_index(headers=_fresh())}
    assert index == {("tiny", "1"): "READY", ("tiny", "2"): "UNAVAILABLE", ("echo", "1"): "UNAVAILABLE"}
    triton.load_model("echo", headers=_fresh())
    assert triton.is_model_ready("echo", headers=_fresh())
    triton.unload_model("tiny", headers=_fresh())
    assert not triton.is_model_ready("tiny", headers=_fresh())
    inp = th.InferInput("input", [1, 3, 32, 32], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(InferenceServerException) as e:
        triton.infer("tiny", [inp], headers=_fresh())
    assert e.value.status() == "409" and "load it with" in e.value.message()
    triton.load_model("tiny", headers=_fresh())
    assert triton.infer("tiny", [inp], headers=_fresh()).as_numpy("logits").shape == (1, 10)


def test_v2_needs_a_key(triton):
    with pytest.raises(InferenceServerException) as e:
        triton.get_model_metadata("tiny")
    assert e.value.status() == "401"
