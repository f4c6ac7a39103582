"""Recommendation serving without a model: cold ids for versions registered before biases were recorded."""

from __future__ import annotations

import numpy as np

from models.recommendation import serving

SIGNATURE = {"inputs": [{"name": "user"}, {"name": "ratings"}],
             "outputs": [{"name": "predicted"}, {"name": "top_scores"}, {"name": "top_items"}]}
OLD = {"users": ["a", "b"], "items": ["x", "y", "z"], "rating_range": [1, 5], "mean_rating": 3.2, "max_k": 3}


def test_an_older_version_answers_a_cold_user_with_its_graph_and_a_cold_item_with_the_mean():
    spec = serving.make_spec(SIGNATURE, OLD)
    assert spec.item_bias is None and spec.user_bias is None
    feeds, asked = serving.preprocess({"user": "nobody", "items": ["y", "w"]}, 0, {"k": 10}, spec)
    assert feeds["user"].tolist() == [-1] and not feeds["ratings"].any()  # the graph folds in no ratings
    graph = {"predicted": np.array([[2.0, 4.5, 3.0]], np.float32)}
    assert serving.postprocess(graph, {}, spec, asked) == {"ratings": [
        {"item": "y", "rating": 4.5, "known": False}, {"item": "w", "rating": 3.2, "known": False}]}
    _, asked = serving.preprocess({"user": "nobody", "k": 2}, 0, {"k": 10}, spec)
    assert serving.postprocess(graph, {}, spec, asked) == {
        "items": [{"item": "y", "score": 4.5}, {"item": "z", "score": 3.0}], "known": False}
