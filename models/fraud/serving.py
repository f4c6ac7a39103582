"""Fraud serving (numpy only): {"features": {name: value, ...}} -> the model's "features" row in schema
order; its "scores" row -> {"score", "is_fraud", "threshold", "top_features"}.

The version's metadata holds the schema (`features`: names in order, `scaling`), the `threshold` chosen
on the validation split and `ignored_columns`: the training file's other columns (the label, dropped
columns such as Time), so that a row sent exactly as it appears in that file is scored; their values are
not read. A record with a missing, unknown, non-numeric, non-finite or float32-overflowing feature is
refused with a 422 naming it (e.g. "inputs[0].features.V3").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.common.errors import SHAPE, InputError
from models.common.numbers import finite_float32
from models.common.signature import one_input, output_named
from models.fraud.schemas import DEFAULT_TOP_FEATURES


@dataclass(frozen=True)
class Spec:
    input_name: str
    output_name: str
    features: tuple[str, ...]
    index: dict[str, int]
    threshold: float
    ignored: frozenset[str] = frozenset()


def make_spec(signature: dict[str, Any], metadata: dict[str, Any], max_pixels: int = 0) -> Spec:
    row, outputs = one_input(signature, 2, "a fraud model takes one input [N, F]")
    names = metadata.get("features")
    if not names:
        raise ValueError("the version's metadata has no feature schema (metadata.features: names in order)")
    width = row["shape"][1]
    if width > 0 and width != len(names):
        raise ValueError(f"metadata.features names {len(names)} features but the model takes {width}")
    threshold = metadata.get("threshold")
    if not isinstance(threshold, (int, float)):
        raise ValueError("the version's metadata has no decision threshold (metadata.threshold)")
    out = output_named(outputs, "scores")
    names = tuple(str(n) for n in names)
    return Spec(row["name"], out["name"], names, {n: i for i, n in enumerate(names)}, float(threshold),
                ignored_columns(metadata) - set(names))


def ignored_columns(metadata: dict[str, Any]) -> frozenset[str]:
    """Versions registered before metadata.ignored_columns existed: their label column and the
    drop_columns of their config (dropped where present, so a name may not have been in the file)."""
    listed = metadata.get("ignored_columns")
    if listed is None:
        config = metadata.get("config") or {}
        listed = [metadata.get("label_column"), *(config.get("drop_columns") or [])]
    return frozenset(str(c) for c in listed if isinstance(c, str))


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - {"top_features", "threshold"}
    if unknown:
        raise InputError("parameters", f"unknown option(s) {sorted(unknown)}; fraud takes top_features, threshold")
    top = params.get("top_features", DEFAULT_TOP_FEATURES)
    if isinstance(top, bool) or not isinstance(top, int) or top < 0:
        raise InputError("parameters.top_features", "must be an integer >= 0")
    threshold = params.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not math.isfinite(threshold)):
        raise InputError("parameters.threshold", "must be a number")
    return {"top_features": top, "threshold": threshold}


def preprocess(item: Any, index: int, params: dict[str, Any], spec: Spec) -> dict[str, np.ndarray]:
    """One record -> {"features": float32 [1, F]} in the schema's order."""
    where = f"inputs[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("features"), dict):
        raise InputError(where, 'expected {"features": {"name": value, ...}}', SHAPE)
    extra = set(item) - {"features"}
    if extra:
        raise InputError(f"{where}.{sorted(extra)[0]}", 'unknown field; a fraud input is {"features": {...}}', SHAPE)
    record = item["features"]
    row = np.empty(len(spec.features), np.float32)
    for name, value in record.items():
        field = f"{where}.features.{name}"
        j = spec.index.get(name)
        if j is None:
            if name in spec.ignored:
                continue  # a column of the training file that the model does not use
            raise InputError(field, f"not a feature of this model; it takes {', '.join(spec.features)}", SHAPE)
        row[j] = finite_float32(value, field)
    missing = [n for n in spec.features if n not in record]
    if missing:
        more = f" (and {len(missing) - 1} more: {', '.join(missing[1:6])})" if len(missing) > 1 else ""
        raise InputError(f"{where}.features.{missing[0]}", f"missing{more}; every feature of the schema is needed")
    return {spec.input_name: row[None]}


def postprocess(outputs: dict[str, np.ndarray], params: dict[str, Any], spec: Spec) -> dict[str, Any]:
    row = outputs[spec.output_name].reshape(-1).astype(np.float64)
    score, contrib = float(row[0]), row[1:]
    threshold = spec.threshold if params.get("threshold") is None else float(params["threshold"])
    k = min(params.get("top_features", DEFAULT_TOP_FEATURES), contrib.size)
    top = np.argsort(-contrib, kind="stable")[:k]
    return {"score": score, "is_fraud": bool(score >= threshold), "threshold": threshold,
            "top_features": [{"feature": spec.features[j], "contribution": float(contrib[j])} for j in top]}
