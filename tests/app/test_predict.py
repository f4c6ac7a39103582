"""The task-level API on a real ONNX Runtime session: right numbers, right envelope, clear errors."""

import base64
import json

import numpy as np
import onnxruntime as ort
import pytest

from tests import onnx_models
from tests.conftest import assert_item_error, assert_problem, upload

LABELS = [f"class-{i}" for i in range(10)]
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def classifier(client, tiny_onnx):
    meta = {"labels": LABELS, "preprocessing": {"size": [32, 32], "channels": 3, "mean": MEAN, "std": STD}}
    upload(client, "clf", tiny_onnx, metadata=json.dumps(meta))
    client.put("/v1/models/clf/aliases/production", json={"version": 1})
    return tiny_onnx


def expected_top(model: bytes, image: np.ndarray, k: int):
    x = image.astype(np.float32) / 255
    x = (x.transpose(2, 0, 1) - np.array(MEAN, np.float32)[:, None, None]) / np.array(STD, np.float32)[:, None, None]
    logits = ort.InferenceSession(model).run(None, {"input": x[None].astype(np.float32)})[0][0].astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    order = np.argsort(-p)[:k]
    return [(LABELS[i], p[i]) for i in order]


def test_predict_gives_the_models_top_k(client, classifier):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    r = client.post("/v1/models/clf/predict", json={
        "inputs": [{"image": b64(onnx_models.png(im))} for im in images], "parameters": {"top_k": 3}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "clf" and body["version"] == 1 and len(body["outputs"]) == 3
    for image, out in zip(images, body["outputs"], strict=True):
        want = expected_top(classifier, image, 3)
        assert [o["label"] for o in out["labels"]] == [w[0] for w in want]
        assert [o["score"] for o in out["labels"]] == pytest.approx([w[1] for w in want], rel=1e-4)


def test_images_are_resized_and_converted(client, classifier):
    grey_big = np.full((64, 48), 200, np.uint8)
    r = client.post("/v1/models/clf/predict", json={"inputs": [{"image": b64(onnx_models.png(grey_big))}]})
    assert r.status_code == 200, r.text
    assert len(r.json()["outputs"][0]["labels"]) == 5  # default top_k


def test_multipart_file_upload(client, classifier):
    img = onnx_models.png(np.zeros((32, 32, 3), np.uint8))
    r = client.post("/v1/models/clf/predict", files=[("file", ("a.png", img)), ("file", ("b.png", img))],
                    data={"parameters": json.dumps({"top_k": 1})})
    assert r.status_code == 200, r.text
    assert [len(o["labels"]) for o in r.json()["outputs"]] == [1, 1]


def test_version_alias_and_the_single_url_form(client, classifier):
    upload(client, "clf", onnx_models.to_bytes(onnx_models.tiny_classifier(seed=5)),
           metadata=json.dumps({"labels": LABELS}))
    client.put("/v1/models/clf/aliases/canary", json={"version": 2})
    image = {"image": b64(onnx_models.png(np.zeros((32, 32, 3), np.uint8)))}
    assert client.post("/v1/models/clf/predict", json={"inputs": [image]}).json()["version"] == 1
    assert client.post("/v1/models/clf/predict?version=2", json={"inputs": [image]}).json()["version"] == 2
    assert client.post("/v1/models/clf/predict?alias=canary", json={"inputs": [image]}).json()["version"] == 2
    r = client.post("/predict", json={"model": "clf", "alias": "canary", "inputs": [image]})
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["model"] == "clf"
    assert_problem(client.post("/predict", json={"inputs": [image]}), 422, '"model"')


def test_lookup_errors(client, classifier):
    image = {"image": b64(onnx_models.png(np.zeros((32, 32, 3), np.uint8)))}
    assert_problem(client.post("/v1/models/nope/predict", json={"inputs": [image]}), 404, "no model named 'nope'")
    assert_problem(client.post("/v1/models/clf/predict?version=7", json={"inputs": [image]}), 404, "no version 7")
    assert_problem(client.post("/v1/models/clf/predict?alias=beta", json={"inputs": [image]}), 404, "no alias 'beta'")
    upload(client, "unaliased", classifier)
    assert_problem(client.post("/v1/models/unaliased/predict", json={"inputs": [image]}), 404, "aliases/production")
    # both at once would leave one silently ignored
    assert_problem(client.post("/v1/models/clf/predict?version=1&alias=production", json={"inputs": [image]}), 422,
                   "a version or an alias, not both")
    assert_problem(client.post("/predict", json={"model": "clf", "version": 1, "alias": "production",
                                                 "inputs": [image]}), 422, "not both")


def test_a_url_encoded_form_is_415_saying_what_to_send(client, classifier):
    r = client.post("/v1/models/clf/predict", data={"inputs": "cat.png"})
    assert_problem(r, 415, "application/json", "multipart/form-data")


@pytest.mark.parametrize("body, status, needle", [
    ({"inputs": []}, 422, '"inputs" must be a non-empty list'),
    ({"inputs": "x"}, 422, '"inputs" must be a non-empty list'),
    ({"nothing": 1}, 422, '"inputs"'),
    ({"inputs": [{"text": "hi"}]}, 422, "inputs[0]"),
    ({"inputs": [{"image": "%%%not-base64"}]}, 422, "inputs[0].image: not valid base64"),
    ({"inputs": [{"image": b64(b"GIF89a nonsense")}]}, 422, "inputs[0].image: not a decodable image"),
    ({"inputs": [{"image": b64(onnx_models.png(np.zeros((4, 4, 3), np.uint8)))}], "parameters": {"top_k": 0}},
     422, "parameters.top_k"),
    ({"inputs": [{"image": b64(onnx_models.png(np.zeros((4, 4, 3), np.uint8)))}], "parameters": {"beam": 3}},
     422, "unknown option"),
    ({"inputs": [{"image": b64(onnx_models.png(np.zeros((4, 4, 3), np.uint8)))}], "timeout_ms": -5},
     422, "timeout_ms"),
])
def test_bad_input_is_422_naming_the_place(client, classifier, body, status, needle):
    assert_problem(client.post("/v1/models/clf/predict", json=body), status, needle)


def test_a_bad_image_in_a_batch_is_answered_in_its_slot_and_the_others_are_answered(client, classifier):
    good = {"image": b64(onnx_models.png(np.zeros((8, 8, 3), np.uint8)))}
    bomb = {"image": b64(onnx_models.png(np.zeros((7000, 7000), np.uint8)))}
    r = client.post("/v1/models/clf/predict", json={"inputs": [good, {"image": b64(b"junk")}, good, bomb]})
    assert_item_error(r, 1, 422, "inputs[1].image", "not a decodable image")
    assert_item_error(r, 3, 413, "inputs[3].image", "over the limit of 40000000 pixels")
    outputs = r.json()["outputs"]
    assert outputs[0] == outputs[2] and len(outputs[0]["labels"]) == 5
    metrics = client.get("/metrics").text
    assert 'dlserve_inference_item_faults_total{kind="value",model="clf",version="1"} 1.0' in metrics
    assert 'dlserve_inference_item_faults_total{kind="too_large",model="clf",version="1"} 1.0' in metrics


def test_when_no_item_can_be_answered_the_request_fails_listing_each(client, classifier):
    r = client.post("/v1/models/clf/predict", json={"inputs": [{"image": b64(b"junk")}, {"image": "%%%"}]})
    body = assert_problem(r, 422, "no input could be answered", "inputs[0].image: not a decodable image")
    assert body["field"] == "inputs[0].image"
    assert [e["field"] for e in body["errors"]] == ["inputs[0].image", "inputs[1].image"]
    assert "not valid base64" in body["errors"][1]["message"]


def test_an_item_not_of_the_familys_form_fails_the_whole_request(client, classifier):
    good = {"image": b64(onnx_models.png(np.zeros((8, 8, 3), np.uint8)))}
    r = client.post("/v1/models/clf/predict", json={"inputs": [good, {"text": "a sentence"}]})
    assert assert_problem(r, 422, "inputs[1].image: missing")["field"] == "inputs[1].image"
    r = client.post("/v1/models/clf/predict", json={"inputs": [good, "just a string"]})
    assert_problem(r, 422, 'inputs[1]: expected {"image": "<base64>"}')


def test_decompression_bomb_is_413_before_decoding(client, classifier):
    bomb = onnx_models.png(np.zeros((7000, 7000), np.uint8))  # 49 Mpixel in a ~50 kB file
    assert len(bomb) < 200_000
    r = client.post("/v1/models/clf/predict", json={"inputs": [{"image": b64(bomb)}]})
    assert_problem(r, 413, "over the limit of 40000000 pixels")


def test_a_task_without_a_family_points_to_v2(client, tiny_onnx):
    upload(client, "det", tiny_onnx, task="detection")
    client.put("/v1/models/det/aliases/production", json={"version": 1})
    r = client.post("/v1/models/det/predict", json={"inputs": [{"image": "x"}]})
    assert_problem(r, 422, "/v2/models/det/infer")


def test_predict_needs_the_predict_scope(client, classifier, settings):
    from tests.app.test_auth import make_key

    trainer = make_key(settings, ["train"])
    r = client.post("/v1/models/clf/predict", json={"inputs": [{"image": "x"}]},
                    headers={"Authorization": f"Bearer {trainer}"})
    assert_problem(r, 403, "'predict' scope")


def test_multipart_parameters_must_be_a_json_object(client, classifier):
    img = onnx_models.png(np.zeros((32, 32, 3), np.uint8))
    for text, needle in (("[1]", "field 'parameters' must be a JSON object"),
                         ("{top_k", "field 'parameters' is not valid JSON")):
        r = client.post("/v1/models/clf/predict", files=[("file", ("a.png", img))], data={"parameters": text})
        assert assert_problem(r, 422, needle)["field"] == "parameters"


def test_a_version_of_a_family_no_longer_registered_is_served_by_v2_and_predict_says_why_not(client):
    import models

    models.register("regression", "tests.toyfamily")  # registered when the version was uploaded ...
    try:
        upload(client, "lines", onnx_models.doubler(3), task="regression")
    finally:
        models.unregister("regression")  # ... and gone at this start (its DLSERVE_FAMILIES entry dropped)
    r = client.post("/v1/models/lines/predict", params={"version": 1}, json={"inputs": [{"features": [1, 2, 3]}]})
    assert_problem(r, 422, "task 'regression' has no family registered on this server", "/v2/models/lines/infer")
    r = client.post("/v2/models/lines/infer", json={"inputs": [
        {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [2.0, 4.0, 6.0]
