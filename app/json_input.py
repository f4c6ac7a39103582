"""Parsing a JSON object a client sent (a body, or a form field holding JSON), with the 422 that says
where it went wrong. One place, so every route refuses bad JSON the same way."""

from __future__ import annotations

from typing import Any

import orjson

from app.errors import Unprocessable


def json_object(raw: bytes | str, *, field: str | None = None, where: str = "the body",
                hint: str = "") -> dict[str, Any]:
    """The parsed object, or Unprocessable naming `field` (or `where`); `hint` follows the not-an-object
    message, e.g. ': {"inputs": [...]}'."""
    place, extra = (f"field '{field}'", {"field": field}) if field else (where, {})
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise Unprocessable(f"{place} is not valid JSON: {e}", **extra) from None
    if not isinstance(value, dict):
        raise Unprocessable(f"{place} must be a JSON object{hint}", **extra)
    return value
