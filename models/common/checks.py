"""What a job's config is checked against at submit (stdlib only: the API imports it).

Every family's config.py has `check_against_dataset(config, stats)`: the checks its worker would
otherwise only make after the job was queued (a column, a language, enough rows), made against the
dataset's stored `stats` (what the family's data.validate returned at upload). A stats key a dataset
uploaded by an older release lacks means that check is skipped, never failed: the worker still checks.

`init_from` is parsed here, once, for the API's submit check and for the worker that loads the weights.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

REGISTRY_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?::(?P<version>[0-9]+)|@(?P<alias>[A-Za-z0-9._-]+))$")
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


class ConfigError(ValueError):
    """A config that cannot run on this dataset. `key` is the config key to change ("columns"), or None
    when the dataset itself cannot serve (too few rows): the API answers 422 naming config.<key> or
    dataset_id."""

    def __init__(self, key: str | None, message: str):
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


INIT_FROM_RULE = ("must be a registered version 'name:3' or 'name@alias', or the name of a weights file "
                  "(.safetensors, .pt, .pth) in the dataset archive")


def is_weights_file(ref: str) -> bool:
    return ref.lower().endswith(WEIGHT_SUFFIXES)


def init_from_ok(ref: str | None) -> bool:
    """A config's init_from: none, a registered version, or a weights file's name inside the dataset archive."""
    return ref is None or bool(REGISTRY_REF.match(ref)) or (
        is_weights_file(ref) and ".." not in ref and not ref.startswith(("/", "\\")))


def enforce(config: Any, checks: list[tuple[str, bool, str]]) -> None:
    """A Config's __post_init__: ValueError naming the first key whose check failed, and its value."""
    for name, ok, message in checks:
        if not ok:
            raise ValueError(f"{name} {message} (got {getattr(config, name)!r})")


def registry_ref(ref: str) -> tuple[str, int | None, str | None]:
    """"name:3" -> ("name", 3, None); "name@alias" -> ("name", None, "alias"); ValueError otherwise."""
    m = REGISTRY_REF.match(ref)
    if m is None:
        raise ValueError(f"init_from {ref!r}: expected 'name:version' or 'name@alias'")
    return m["name"], int(m["version"]) if m["version"] else None, m["alias"]


def weights_file(folder: Path, ref: str) -> Path | None:
    """A weights file shipped in an archive dataset: at its top, or inside its one enclosing folder."""
    if not folder.is_dir():
        return None
    candidates = [folder / ref, *(d / ref for d in sorted(folder.iterdir()) if d.is_dir())]
    return next((c for c in candidates if c.resolve().is_relative_to(folder.resolve()) and c.is_file()), None)


def at_least_two(stats: dict[str, Any], count_key: str, what: str, held_out: bool) -> None:
    """The worker holds one example out for validation unless the data brings its own split."""
    n = stats.get(count_key)
    if isinstance(n, int) and n < 2 and not held_out:
        raise ConfigError(None, f"the dataset has {n} {what}; at least 2 are needed to hold one out for validation")


def same_backbone(ref: str, theirs: dict[str, Any], mine: dict[str, Any]) -> None:
    """init_from: what both sides state must agree, or the worker would find tensors of other shapes."""
    diff = [k for k, v in mine.items() if v is not None and theirs.get(k) is not None and theirs[k] != v]
    if diff:
        raise ConfigError("init_from", f"{ref!r} was trained with {', '.join(f'{k} {theirs[k]}' for k in diff)}; "
                                       f"this job has {', '.join(f'{k} {mine[k]}' for k in diff)}, so its weights "
                                       "would not fit")
