"""Fraud serving without a model: which columns a version accepts and ignores."""

from __future__ import annotations

import numpy as np
import pytest

from models.common.errors import InputError
from models.fraud import serving

SIGNATURE = {"inputs": [{"name": "features", "shape": [-1, 2]}], "outputs": [{"name": "scores", "shape": [-1, 3]}]}


def test_a_version_registered_before_ignored_columns_existed_ignores_its_label_and_dropped_columns():
    old = {"features": ["V1", "Amount"], "threshold": 0.5, "label_column": "Class",
           "config": {"drop_columns": ["Time", "id"]}}
    spec = serving.make_spec(SIGNATURE, old)
    feeds = serving.preprocess({"features": {"Time": 3, "V1": 1.5, "Amount": 2, "Class": 0, "id": 7}}, 0, {}, spec)
    np.testing.assert_array_equal(feeds["features"], np.array([[1.5, 2.0]], np.float32))
    with pytest.raises(InputError) as e:
        serving.preprocess({"features": {"V1": 1, "Amount": 2, "Tim": 0}}, 0, {}, spec)
    assert e.value.field == "inputs[0].features.Tim"
    with pytest.raises(InputError) as e:
        serving.preprocess({"features": {"V1": float("nan"), "Amount": 2}}, 4, {}, spec)
    assert e.value.field == "inputs[4].features.V1"


@pytest.mark.parametrize("value", [3.5e38, -1e308, 10**400], ids=["3.5e38", "-1e308", "10**400"])
def test_numbers_float32_cannot_hold_are_refused_naming_the_feature(value):
    spec = serving.make_spec(SIGNATURE, {"features": ["V1", "Amount"], "threshold": 0.5, "ignored_columns": []})
    with pytest.raises(InputError) as e:
        serving.preprocess({"features": {"V1": 1.0, "Amount": value}}, 2, {}, spec)
    assert e.value.field == "inputs[2].features.Amount" and "float32" in e.value.message
