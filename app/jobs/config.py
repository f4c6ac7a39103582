"""A job's `config` checked against its family's Config dataclass: unknown keys and bad values become a
422 that names the key. The dataclass stays stdlib-only; pydantic does the type checking here."""

from __future__ import annotations

import dataclasses
import typing
from functools import lru_cache
from typing import Any

from pydantic import ConfigDict, ValidationError, create_model

from app.errors import Unprocessable
from models import family


@lru_cache
def _model(cls: type):
    hints = typing.get_type_hints(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        fields[f.name] = (hints[f.name], default)
    # allow_inf_nan=False: Python's JSON reader takes NaN, Infinity and 1e999, and a range check written
    # as `x >= 0` lets infinity through (and NaN through `not x < 0`).
    config = ConfigDict(extra="forbid", strict=False, allow_inf_nan=False)
    return create_model(f"{cls.__name__}Check", __config__=config, **fields)


def validate_config(task: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The full config (defaults filled in) as a JSON-able dict, or Unprocessable naming the key."""
    cls = family(task).config
    try:
        values = _model(cls).model_validate(raw).model_dump()
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                known = ", ".join(f.name for f in dataclasses.fields(cls))
                problems.append(f"config.{key}: unknown key for {task}; known keys: {known}")
            else:
                problems.append(f"config.{key}: {err['msg']} (got {err.get('input')!r})")
        raise Unprocessable("; ".join(problems), field=f"config.{'.'.join(str(p) for p in e.errors()[0]['loc'])}",
                            errors=problems) from e
    try:
        config = cls(**values)  # the family's own range checks (__post_init__), which also fill in defaults
    except (ValueError, TypeError) as e:
        key = str(e).split(" ", 1)[0]
        field = f"config.{key}" if key in values else "config"
        raise Unprocessable(f"{field}: {e}", field=field) from e
    return dataclasses.asdict(config)  # what will run: keys left out as None show the value they stand for
