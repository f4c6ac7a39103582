"""Reading a version's ONNX signature in serving.make_spec (numpy-free, stdlib only)."""

from __future__ import annotations

from typing import Any


def one_input(signature: dict[str, Any], rank: int, takes: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The single input of a one-input graph, and its outputs. `takes` says what the family expects
    ("a fraud model takes one input [N, F]"); a graph of other inputs is a ValueError naming them."""
    inputs = signature["inputs"]
    if len(inputs) != 1 or len(inputs[0]["shape"]) != rank:
        raise ValueError(f"{takes}; this one takes {[(i['name'], i['shape']) for i in inputs]}")
    return inputs[0], signature["outputs"]


def output_named(outputs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The output called `name`, else the first (a graph exported elsewhere may name it otherwise)."""
    return next((o for o in outputs if o["name"] == name), outputs[0])
