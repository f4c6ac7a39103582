"""Metadata that contradicts the model is refused at upload: labels for 3 classes on a 10-class output
would answer every request with the wrong label."""

import json

import pytest

from models.common.errors import MetadataMismatch
from models.detection import serving as detection
from tests.conftest import assert_problem


@pytest.mark.parametrize("labels", [list("abc"), [str(i) for i in range(11)]])
def test_classification_labels_that_disagree_with_the_output_are_a_422_naming_both(client, tiny_onnx, labels):
    r = client.post("/v1/models/cls/versions", files={"file": ("m.onnx", tiny_onnx)},
                    data={"task": "classification", "metadata": json.dumps({"labels": labels})})
    body = assert_problem(r, 422, f"{len(labels)} labels", "10 classes")
    assert body["field"] == "metadata"
    assert client.get("/v1/models").json() == []


def test_matching_labels_and_no_labels_are_accepted(client, tiny_onnx):
    for meta in ({"labels": list("abcdefghij")}, {}):
        r = client.post("/v1/models/cls/versions", files={"file": ("m.onnx", tiny_onnx)},
                        data={"task": "classification", "metadata": json.dumps(meta)})
        assert r.status_code == 201, r.text


def test_detection_labels_that_disagree_with_the_class_scores_are_a_mismatch():
    signature = {"inputs": [{"name": "images", "shape": [-1, 3, 64, 64]}],
                 "outputs": [{"name": "predictions", "shape": [-1, 100, 4 + 3]}]}
    with pytest.raises(MetadataMismatch, match="3 class scores.*names 2"):
        detection.make_spec(signature, {"labels": ["cat", "dog"]})
    assert detection.make_spec(signature, {"labels": ["cat", "dog", "bird"]}).labels == ("cat", "dog", "bird")
