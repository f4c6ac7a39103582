"""Regression serving (numpy only): {"features": [x1, ..., xn]} -> {"value": y}."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.common.errors import InputError


@dataclass(frozen=True)
class Spec:
    input_name: str
    output_name: str
    features: tuple[str, ...]


def make_spec(signature: dict[str, Any], metadata: dict[str, Any], max_pixels: int = 0) -> Spec:
    inputs, outputs = signature["inputs"], signature["outputs"]
    if len(inputs) != 1 or len(inputs[0]["shape"]) != 2:
        raise ValueError(f"a regression model takes one input [N, F]; this one takes {len(inputs)}")
    features = metadata.get("features")
    if not features:
        raise ValueError("the version's metadata has no feature names (metadata.features)")
    return Spec(inputs[0]["name"], outputs[0]["name"], tuple(features))


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    if params:
        raise InputError("parameters", f"unknown option(s) {sorted(params)}; regression takes none")
    return {}


def preprocess(item: Any, index: int, params: dict[str, Any], spec: Spec) -> dict[str, np.ndarray]:
    where = f"inputs[{index}].features"
    values = item.get("features") if isinstance(item, dict) else None
    if not isinstance(values, list) or len(values) != len(spec.features):
        raise InputError(where, f"expected a list of {len(spec.features)} numbers ({', '.join(spec.features)})")
    for j, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > 1e30:
            raise InputError(f"{where}[{j}]", "must be a finite number")
    return {spec.input_name: np.asarray([values], np.float32)}


def postprocess(outputs: dict[str, np.ndarray], params: dict[str, Any], spec: Spec) -> dict[str, Any]:
    return {"value": float(outputs[spec.output_name].reshape(-1)[0])}
