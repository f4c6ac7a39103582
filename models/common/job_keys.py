"""The keys of a job's `config` that every family takes (stdlib only): how the platform runs the job, not
what the family trains. They are checked and stored with the family's keys in the job's `config` (only
where they differ from their defaults, so that a job's config is still what its family's Config takes)
and taken out before the family's Config is made (`split`); the job's progress shows `devices`.

Platform keys rather than fields of each family's Config: a family that cannot honour one is refused
with a 422 that says why (devices on a family that is not `distributed`), not "unknown key"; and no
family's training code sees them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

MAX_DEVICES = 64


@dataclass(frozen=True)
class JobKeys:
    devices: int = field(default=1, metadata={"doc": (
        "Processes to train in, one per device (issue 22): the worker starts them with torchrun, one per GPU "
        "when it trains on CUDA, else one per CPU core (gloo), each with its share of the cores' threads. "
        "The global batch (`batch_size`) and the learning-rate schedule are those of one process; each process "
        "takes its share of every batch and the gradients are averaged. Only families that declare "
        "`distributed` take more than 1 (classification, detection, translation); a worker with fewer devices "
        "than asked fails the job when it starts, saying so."), "minimum": 1, "maximum": MAX_DEVICES})

    def __post_init__(self) -> None:
        if isinstance(self.devices, bool) or not 1 <= self.devices <= MAX_DEVICES:
            raise ValueError(f"devices must be between 1 and {MAX_DEVICES}")


KEYS = tuple(f.name for f in dataclasses.fields(JobKeys))


def split(values: dict[str, Any]) -> tuple[dict[str, Any], JobKeys]:
    """A job's stored config -> (the family's keys, the platform's: defaults where a job predates them)."""
    return {k: v for k, v in values.items() if k not in KEYS}, JobKeys(**{k: values[k] for k in KEYS if k in values})
