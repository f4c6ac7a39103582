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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel


@dataclass(frozen=True)
class QuantisationGate:
    """How an int8 version of a family's fp32 version is judged (issue 20): `metric`, a key that the family's
    evaluation.evaluate_onnx returns (the run metrics' name, e.g. "val_accuracy"), is measured for parent and
    int8 by the same ONNX Runtime evaluation on the held-out split; the int8 version is refused when it is
    worse by more than `tolerance` (settings may override it). `methods`: the ONNX Runtime quantisation
    methods worth trying for this family ("static" with calibration batches, "dynamic"). `op_types`: the ONNX
    op types that either method quantises (e.g. ("Conv", "MatMul", "Gemm"): what follows the last matrix
    product, a box decoding or a log-softmax, stays float); None: ONNX Runtime's default for the method."""
    metric: str
    direction: str  # "max" or "min": which is better
    tolerance: float
    methods: tuple[str, ...] = ("static", "dynamic")
    op_types: tuple[str, ...] | None = None


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
    # -- what a run reports, what a version holds, how a job may run --
    # The metrics a run ends with (the job's latest metrics, the version's metrics): the keys train()
    # returns and evaluate()'s keys prefixed val_. Key -> one line on it; a key reported only under some
    # config says so. The worker adds train_seconds and train_samples_per_s to every family's.
    metrics: Mapping[str, str] = field(default_factory=dict)
    # The files a multi_file version holds beside model.onnx (graphs, tokenizers): what export_artifacts
    # writes and serving.make_spec/make_runner read.
    artifacts: tuple[str, ...] = ()
    # Can train in several processes (issue 22: torchrun, DistributedDataParallel). None can yet; a job
    # asking a family without it for several devices is to be refused at submit.
    distributed: bool = False
    # The predict contract (pydantic models in the family's schemas.py; the API validates every item of
    # `inputs` and the `parameters` with them before preprocess, and the OpenAPI shows them): one item of
    # `inputs`, the `parameters` object, one item of `outputs`. None: the API checks nothing before preprocess.
    predict_input: type[BaseModel] | None = None
    predict_parameters: type[BaseModel] | None = None
    predict_output: type[BaseModel] | None = None
    # Kinds of input fault (models.common.errors: shape, value, too_large) answered in the item's own slot of
    # `outputs` while the other items are answered; any other fault, and any in `parameters`, fails the request.
    item_faults: frozenset[str] = frozenset()
    # The metric that ranks this family's runs (the dashboard's best-metric column and sort=best_metric): a key
    # of a run's final metrics (evaluate()'s results are recorded as val_<name>), and "max" or "min": which is better.
    best_metric: tuple[str, str] | None = None
    # int8 versions (issue 20): the gate, and the family's evaluation.evaluate_onnx(data, folder, limit=None)
    # -> {metric: float}: a version folder (model.onnx and its artifacts) scored with ONNX Runtime on the
    # validation split of training.load_dataset's Prepared data, never on the training rows that
    # calibration_batches draws from. None: the family has no int8 versions (a quantisation job is a 422).
    quantisation: QuantisationGate | None = None
    # The Triton hand-off (issue 21, GET /v1/models/{name}/versions/{v}/export?format=triton): one line on what
    # the exported repository's graph takes and gives, and what stays on the client (the family's pre- and
    # post-processing in serving.py). A multi_file family's versions are not exported (a loop in Python runs
    # their graphs): the line says so, and the 422 quotes it. "": nothing declared, the graph is exported alone.
    triton: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)  # room for what later parts of the contract add

    @classmethod
    def of(cls, task: str, package: str, config: ModuleType, data: ModuleType, schemas: ModuleType,
           **declared: Any) -> Family:
        """The fields every family fills the same way, from its modules' fixed names: data.FORMATS and
        data.ARCHIVE_FORMATS, config.Config and config.check_against_dataset, schemas.INPUT, PARAMETERS and
        OUTPUT; `declared` holds the rest (metrics, best_metric, item_faults, capabilities, ...)."""
        return cls(task=task, package=package, formats=data.FORMATS, config=config.Config,
                   check_config=config.check_against_dataset, archive_formats=data.ARCHIVE_FORMATS,
                   predict_input=schemas.INPUT, predict_parameters=schemas.PARAMETERS, predict_output=schemas.OUTPUT,
                   **declared)

    def part(self, name: str) -> ModuleType:
        return importlib.import_module(f"{self.package}.{name}")

    @property
    def serving(self) -> ModuleType:
        return self.part("serving")

    @property
    def data(self) -> ModuleType:
        return self.part("data")

    @property
    def evaluation(self) -> ModuleType:
        """ONNX Runtime evaluation of a version folder (models.contract.Family.quantisation)."""
        return self.part("evaluation")

    @property
    def training(self) -> ModuleType:
        """Imports torch: workers only."""
        return self.part("training")


def run_metrics(trained: Mapping[str, Any], evaluated: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics a run of a family ends with, the keys its `metrics` declares: what train() returned, then
    what evaluate() measured, prefixed val_ (evaluate's word is the last on a key both give)."""
    return {**trained, **{f"val_{k}": v for k, v in evaluated.items()}}


def metric_table(text: str) -> dict[str, str]:
    """Lines of 'key  meaning' (blank ones skipped) -> {key: meaning}: a family's `metrics` written as a
    table, which reads like the docs' and like no other family's code."""
    table: dict[str, str] = {}
    for line in filter(str.strip, text.splitlines()):
        key, _, meaning = line.strip().partition(" ")
        if not meaning.strip() or key in table:
            raise ValueError(f"metric_table: {line.strip()!r} is not 'key  meaning', or repeats a key")
        table[key] = meaning.strip()
    return table
