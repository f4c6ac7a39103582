"""Shapes of the job API's answers and bodies (they also document it in /docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.api.openapi import RunStatus, Task, enum_of
from app.db.tables import TrainingRun
from app.jobs.listing import TAG_PATTERN, RunExtras
from app.jobs.quantisation import is_quantisation
from models import TASKS, family

MAX_TAGS = 20
MAX_NOTE_CHARS = 10_000
Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN, min_length=1, max_length=64)]


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(description="the task family", **enum_of(TASKS))
    dataset_id: str
    config: dict[str, Any] = Field(default_factory=dict, description=(
        "hyperparameters; see the family's Config (docs/config/<task>.md). Every family also takes `devices` "
        "(integer 1..64, default 1): processes to train in, one per GPU or CPU core, with the same global batch "
        "and schedule; more than 1 only for families that declare `distributed` (else 422)"),
        json_schema_extra={"properties": {"devices": {"type": "integer", "minimum": 1, "maximum": 64, "default": 1}}})
    register_as: str | None = Field(None, description="model name for the trained version (default: <task>-<id>)")
    alias: str | None = Field(None, description="alias to point at the new version, e.g. production")


class JobPatch(BaseModel):
    """What a person adds to a run. A field left out is kept; tags replace the run's tags."""

    model_config = ConfigDict(extra="forbid")
    tags: list[Tag] | None = Field(None, max_length=MAX_TAGS, description=f"at most {MAX_TAGS}, each 1-64 letters, "
                                   "digits, '.', '_', ':', '+' or '-', starting with a letter or digit")
    note: str | None = Field(None, max_length=MAX_NOTE_CHARS, pattern=r"^[^\x00]*$",
                             description="free text (\"\" clears it)")


class ModelVersionRef(BaseModel):
    name: str
    version: int


class BestMetricValue(BaseModel):
    key: str = Field(description="the family's best metric (GET /v1/families)")
    goal: Literal["max", "min"]
    value: float | None = Field(description="the run's latest value; none until it records one")


class JobOut(BaseModel):
    id: str
    task: Task
    dataset_id: str | None
    dataset_name: str | None = None
    status: RunStatus
    config: dict[str, Any]
    register_as: str | None
    alias: str | None
    progress: dict[str, Any] = Field(description="epoch, epochs, step, total, fraction, eta_s, samples_per_s")
    metrics: dict[str, Any] = Field(description="the latest value of each metric")
    best_metric: BestMetricValue | None = Field(None, description="none when the family declares no best metric")
    error: str | None
    attempts: int
    cancel_requested: bool
    model_version: ModelVersionRef | None
    worker: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None = Field(None, description="seconds from start to finish (while running: to its "
                                                       "last heartbeat)")
    tags: list[str] = []
    note: str | None = None
    kind: Literal["training", "quantisation"] = Field(
        "training", description="quantisation: an int8 version of a registered one (POST /v1/models/{name}/versions/"
                                "{version}/quantize), whose config holds what it was asked")


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int


class MetricOut(BaseModel):
    key: str
    step: int
    epoch: float | None
    value: float
    created_at: datetime


class MetricHistory(BaseModel):
    job_id: str
    items: list[MetricOut]


def _best(run: TrainingRun) -> BestMetricValue | None:
    contract = family(run.task)
    if contract is None or not contract.best_metric:
        return None
    key, goal = contract.best_metric
    value = (run.latest_metrics or {}).get(key)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return BestMetricValue(key=key, goal=goal, value=float(value) if ok else None)


def _duration(run: TrainingRun) -> float | None:
    end = run.finished_at or run.heartbeat_at
    if run.started_at is None or end is None:
        return None
    return round(max(0.0, (end - run.started_at).total_seconds()), 3)


def job_out(run: TrainingRun, extras: RunExtras | None = None) -> JobOut:
    extras = extras or RunExtras()
    version = extras.version
    return JobOut(
        id=run.id, task=run.task, dataset_id=run.dataset_id, dataset_name=extras.dataset_name, status=run.status,
        config=run.params or {}, register_as=run.register_as, alias=run.alias, progress=run.progress or {},
        metrics=run.latest_metrics or {}, best_metric=_best(run), error=run.error, attempts=run.attempts,
        cancel_requested=run.cancel_requested,
        model_version=ModelVersionRef(name=version[0], version=version[1]) if version else None, worker=run.worker,
        heartbeat_at=run.heartbeat_at, created_at=run.created_at, started_at=run.started_at,
        finished_at=run.finished_at, duration_s=_duration(run), tags=list(extras.tags), note=run.note,
        kind="quantisation" if is_quantisation(run.params) else "training",
    )
