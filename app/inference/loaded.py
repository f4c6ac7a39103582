"""A model version loaded for serving: its session, batcher, family serving spec and users."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnxruntime as ort

from app.inference.batcher import Batcher


@dataclass(frozen=True)
class VersionInfo:
    """What the registry says about a version (read from the database)."""

    id: int
    name: str
    version: int
    task: str
    signature: dict[str, Any]
    metadata: dict[str, Any]
    sha256: str
    path: Path

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.version)


@dataclass(eq=False)
class LoadedModel:
    info: VersionInfo
    session: ort.InferenceSession
    family: ModuleType | None  # the family's serving module; None: its task is not registered here (V2 only)
    spec: Any  # the family's serving spec; None when it could not be made (spec_error says why): V2 only
    spec_error: str | None
    memory_bytes: int
    # An encoder-decoder version's batch function (encoder, then beam search over decoder steps);
    # None: a batch is one session run.
    runner: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    batcher: Batcher | None = None
    last_used: float = field(default_factory=time.monotonic)
    users: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self):
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.released.set()

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def version(self) -> int:
        return self.info.version

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.runner is not None:
            return self.runner(feeds)
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds), strict=True))

    def acquire(self) -> None:
        self.users += 1
        self.released.clear()
        self.last_used = time.monotonic()

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            self.released.set()
