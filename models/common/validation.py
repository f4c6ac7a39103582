"""Checking a predict item or `parameters` against a family's schema (models/<task>/schemas.py), with the
error a client gets: InputError naming the place ("inputs[2].ratings[0].rating") and saying what is wrong
in the words serving.py uses. The first fault is reported, an unknown member before a missing one (a
misspelt name explains the missing one)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from models.common.errors import SHAPE, InputError, InputTooLarge

_TYPES = {"int_type": "an integer", "int_from_float": "an integer", "float_type": "a number",
          "string_type": "a string", "bool_type": "true or false", "list_type": "a list", "dict_type": "an object",
          "model_type": "an object", "model_attributes_type": "an object"}
_ORDER = {"extra_forbidden": 0, "missing": 1}


def check_item(model: type[BaseModel], item: Any, index: int) -> None:
    """InputError (kind shape, value or too_large) when `item` is not a valid input of the family."""
    form = getattr(model, "form", "an object")
    _check(model, item, f"inputs[{index}]", f"expected {form}", f"an input is {form}")


def check_parameters(model: type[BaseModel], params: dict[str, Any]) -> None:
    names = ", ".join(model.model_fields) or "none"
    _check(model, params, "parameters", "expected an object", f"the options are {names}", member="option")


def _check(model: type[BaseModel], value: Any, where: str, expected: str, hint: str, member: str = "field") -> None:
    try:
        model.__pydantic_validator__.validate_python(value)
    except ValidationError as e:
        error = min(e.errors(include_url=False), key=lambda x: _ORDER.get(x["type"], 2))
        raise _input_error(error, where, expected, hint, member) from None


_SIGNS = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}


def _input_error(error: dict[str, Any], where: str, expected: str, hint: str, member: str) -> InputError:
    loc, kind, ctx = list(error["loc"]), error["type"], error.get("ctx") or {}
    whole = not loc  # the item as a whole is not of the family's form (a check across its members included)
    if "at" in ctx:  # a check across members names the member it refuses
        loc.append(ctx["at"])
    field = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
    got = f" (got {error.get('input')!r:.40})"
    fault = None  # InputError's default: a value
    if kind == "extra_forbidden":
        message, fault = f"unknown {member}; {hint}", SHAPE
    elif kind == "missing":
        message, fault = f"missing; {hint}", SHAPE
    elif whole:
        message, fault = (expected + got if kind in _TYPES else error["msg"]), SHAPE
    elif kind in _TYPES:
        message = f"must be {_TYPES[kind]}{got}"
    elif kind in ("string_too_long", "too_long"):
        return InputTooLarge(field, f"is {_size(error['input'])}, over the limit of {ctx.get('max_length')}")
    elif kind in ("string_too_short", "too_short") and ctx.get("min_length") == 1:
        message = "is empty"
    elif kind == "string_pattern_mismatch" and ctx.get("pattern") == r"\S":
        message = "is empty (or only white space)"
    elif kind in _SIGNS:
        message = f"must be {_SIGNS[kind]} {next(iter(ctx.values()))}{got}"
    else:
        message = error["msg"]
    return InputError(field, message, fault)


def _size(value: Any) -> str:
    return f"{len(value)} characters" if isinstance(value, str) else f"{len(value)} items"
