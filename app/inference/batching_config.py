"""A version's batching: the settings' defaults, overridden per version in `metadata.batching`
({"max_batch_size", "max_queue_delay_ms"}), checked when a version is uploaded so that a bad value is a
422 then, not a version that fails to load once an alias points at it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.settings import Settings

LIMITS = {"max_batch_size": (int, 1, 4096), "max_queue_delay_ms": (float, 0, 60_000)}


class BatchingError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field} {message}")
        self.field = field


@dataclass(frozen=True)
class BatchConfig:
    max_batch: int
    max_delay_s: float


def check(metadata: dict[str, Any]) -> dict[str, Any]:
    """metadata.batching, checked: known keys only, each a number in its range."""
    batching = metadata.get("batching")
    if batching is None:
        return {}
    if not isinstance(batching, dict):
        raise BatchingError("metadata.batching", f"must be an object like {{\"max_batch_size\": 32}}, not {batching!r}")
    unknown = set(batching) - set(LIMITS)
    if unknown:
        raise BatchingError("metadata.batching", f"has unknown key(s) {sorted(unknown)}; it takes {sorted(LIMITS)}")
    for key, (kind, low, high) in LIMITS.items():
        value = batching.get(key)
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not low <= value <= high or (kind is int and value != int(value)):  # range first: int(inf)
            what = "an integer" if kind is int else "a number"
            raise BatchingError(f"metadata.batching.{key}", f"must be {what} from {low} to {high}, not {value!r}")
    return batching


def resolve(metadata: dict[str, Any], settings: Settings) -> BatchConfig:
    batching = check(metadata)
    return BatchConfig(max_batch=int(batching.get("max_batch_size", settings.max_batch_size)),
                       max_delay_s=float(batching.get("max_queue_delay_ms", settings.max_queue_delay_ms)) / 1000)
