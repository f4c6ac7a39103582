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
from models.common import job_keys


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
    """The full config (defaults filled in) as a JSON-able dict, or Unprocessable naming the key: the family's
    keys, then the platform's (models/common/job_keys.py)."""
    raw = dict(raw)
    platform = _platform(task, {k: raw.pop(k) for k in job_keys.KEYS if k in raw})
    return {**_family(task, raw), **platform}


def _platform(task: str, raw: dict[str, Any]) -> dict[str, Any]:
    try:
        keys = job_keys.JobKeys(**_model(job_keys.JobKeys).model_validate(raw).model_dump())
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise Unprocessable(f"config.{key}: {err['msg']} (got {err.get('input')!r})", field=f"config.{key}") from e
    except ValueError as e:
        raise Unprocessable(f"config.{e}", field=f"config.{str(e).split(' ', 1)[0]}") from e
    if keys.devices > 1 and not family(task).distributed:
        raise Unprocessable(f"config.devices: {task} cannot train in several processes (its family does not "
                            "declare `distributed`); leave devices out or set it to 1", field="config.devices")
    # Only where asked for something else than the default: a job's config stays what the family's Config takes
    # (clients and tests make a Config of it), and a key left out means its default, as in an old job's.
    default = job_keys.JobKeys()
    return {k: v for k, v in dataclasses.asdict(keys).items() if v != getattr(default, k)}


def _family(task: str, raw: dict[str, Any]) -> dict[str, Any]:
    cls = family(task).config
    try:
        values = _model(cls).model_validate(raw).model_dump()
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                known = ", ".join([f.name for f in dataclasses.fields(cls)] + list(job_keys.KEYS))
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
