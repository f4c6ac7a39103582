"""The contract between the platform and a task family, in one place (issue 18, first part).

Each family's package declares `FAMILY = Family(...)` in its `__init__.py`: what it takes (dataset
formats), how it is configured (its Config class, every field documented, and the check of a config
against a dataset's stats made at submit), and which optional capabilities it has. The platform reads
these fields; it never probes a family's modules for what they can do.

The family's modules keep their roles (see models/__init__.py): serving.py and data.py are numpy/Pillow
only and imported by the API; config.py is stdlib only; training.py imports torch and is imported by
workers only, through `Family.training`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class Family:
    task: str
    package: str  # the family's Python package, e.g. "models.translation"
    formats: Mapping[str, str]  # dataset format -> one line on what it is
    config: type  # the Config dataclass of a training job (stdlib only; every field has metadata["doc"])
    check_config: Callable[[Any, dict[str, Any]], None]  # Config against a dataset's stats, at submit
    archive_formats: frozenset[str] = frozenset()  # uploads the API unpacks into a folder before validating
    either_formats: frozenset[str] = frozenset()  # a single file, or an archive of files, told apart by content
    init_from_tasks: tuple[str, ...] = ()  # whose registered versions `init_from` may load (empty: none)
    # (config, ref, source task, source metadata, dataset stats) -> None or ConfigError: the architecture of
    # a registered version `init_from` names against the job's, at submit
    check_init_from: Callable[[Any, str, str, dict[str, Any], dict[str, Any]], None] | None = None
    # Versions of several graphs and files (an encoder, a decoder step, tokenizers): serving.make_runner
    # decodes them, training.export_artifacts writes them (and check_parity checks them).
    multi_file: bool = False
    batch_padding: bool = False  # serving.batch_padding(spec): rows of different lengths batch together
    warmup_feeds: bool = False  # serving.warmup_feeds(spec, rows): inputs to warm a loaded version with
    # training.calibration_batches(data, count, batch_size) -> Iterator[dict]: batches for int8 calibration,
    # up to `count` of up to `batch_size` rows of the run's training split (the same every time for the same
    # data; models.common.calibration.rows). A one-graph family yields the exported model's feeds
    # {input name: array [B, ...]}. A multi_file family yields {graph file: feeds}: "model.onnx" (the encoder)
    # gets its feeds, "decoder.onnx" gets {"token": int64 [B, T]}, the target tokens of the same rows (BOS
    # first); the decoder's other inputs are the encoder's outputs and the cache after the tokens before,
    # which models.common.calibration.decoder_steps computes by running the graphs, one feed per step.
    calibration: bool = False
    metadata_version: int = 1  # of what training writes in a version's metadata; older versions still load
    extra: Mapping[str, Any] = field(default_factory=dict)  # room for what later parts of the contract add

    def part(self, name: str) -> ModuleType:
        return importlib.import_module(f"{self.package}.{name}")

    @property
    def serving(self) -> ModuleType:
        return self.part("serving")

    @property
    def data(self) -> ModuleType:
        return self.part("data")

    @property
    def training(self) -> ModuleType:
        """Imports torch: workers only."""
        return self.part("training")
