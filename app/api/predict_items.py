"""The items of a task-level request, one by one: each is checked against its family's input schema, then
preprocessed, then its feeds checked for numbers the model cannot compute with. A fault of a kind the
family answers per item (Family.item_faults: an undecodable image in a batch of eight) becomes an error
in that item's slot of `outputs` while the others are answered; any other fault fails the request.

When every item has such a fault, nothing is answered: the request fails with the first one's status
(413 or 422) and field, and `errors` lists each item's, so a one-item request is answered as before."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.errors import DlserveError
from app.inference import calls
from models.common.errors import VALUE, InputError
from models.common.numbers import FLOAT32_MAX, first_unrepresentable
from models.common.validation import check_item, check_parameters
from models.contract import Family


@dataclass
class Items:
    """What preprocessing made of `inputs`: feeds and contexts of the items to run, with their positions,
    and the per-item faults by position."""

    feeds: list[dict[str, Any]] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    faults: dict[int, InputError] = field(default_factory=dict)


def parameters(contract: Family, serving: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The request's `parameters`, checked against the family's schema and then by its serving module."""
    try:
        if contract.predict_parameters is not None:
            check_parameters(contract.predict_parameters, params)
        return serving.check_params(params)
    except InputError as e:
        raise calls.input_problem(e) from None


def prepare(contract: Family, serving: Any, spec: Any, inputs: list[Any], params: dict[str, Any]) -> Items:
    items = Items()
    for i, item in enumerate(inputs):
        try:
            prepared = _prepare_one(contract, serving, spec, item, i, params)
        except InputError as e:
            if e.kind not in contract.item_faults:
                raise calls.input_problem(e) from None
            items.faults[i] = e
            continue
        feeds, context = prepared if isinstance(prepared, tuple) else (prepared, None)
        items.feeds.append(feeds)
        items.contexts.append(context)
        items.positions.append(i)
    return items


def _prepare_one(contract: Family, serving: Any, spec: Any, item: Any, i: int, params: dict[str, Any]) -> Any:
    """A family's preprocess returns feeds, or (feeds, context) when its postprocess needs something of the
    input that the tensors lose (a detector: how the image was letterboxed, to map boxes back to its pixels)."""
    if contract.predict_input is not None:
        check_item(contract.predict_input, item, i)
    with np.errstate(over="ignore", invalid="ignore"):  # a number cast to infinity is refused below, by name
        prepared = serving.preprocess(item, i, params, spec)
    feeds = prepared[0] if isinstance(prepared, tuple) else prepared
    _check_finite(feeds, item, i)
    return prepared


def _check_finite(feeds: dict[str, Any], item: Any, i: int) -> None:
    """Whatever a family checks, a float feed holding NaN or infinity (a JSON number past float32's range
    becomes one) would come back as a NaN answer, which JSON writes as null: refuse it, naming the field."""
    for array in feeds.values():
        if isinstance(array, np.ndarray) and array.dtype.kind == "f" and not np.isfinite(array).all():
            where = first_unrepresentable(item, f"inputs[{i}]") or f"inputs[{i}]"
            raise InputError(where, f"a number that is not finite or beyond float32's range (±{FLOAT32_MAX:.4g}), "
                                    "which the model cannot compute with", VALUE)


def error_slot(fault: InputError) -> dict[str, Any]:
    """The answer in a faulty item's place of `outputs`: the problem it would have been alone."""
    problem = calls.input_problem(fault)
    return {"error": {"type": f"urn:dlserve:problem:{problem.slug}", "title": problem.title,
                      "status": problem.status, "detail": problem.detail, "field": fault.field}}


def all_faulted(faults: dict[int, InputError]) -> DlserveError:
    first = faults[min(faults)]
    problem = calls.input_problem(first)
    if len(faults) > 1:
        problem.detail = f"no input could be answered; the first: {problem.detail}"
    problem.extra["errors"] = [{"field": f.field, "message": f.message} for _, f in sorted(faults.items())]
    return problem


def outputs(items: Items, answers: list[Any], n: int) -> list[Any]:
    """Every item's answer in its place, an error object where it had a per-item fault."""
    slots: list[Any] = [None] * n
    for position, answer in zip(items.positions, answers, strict=True):
        slots[position] = answer
    for position, fault in items.faults.items():
        slots[position] = error_slot(fault)
    return slots
