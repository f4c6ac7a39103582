"""Response shapes of the registry API (they also document it in /docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.api.openapi import INT32_MAX, Task, VersionStatus
from app.db.tables import ModelAlias, ModelVersion, RegisteredModel
from app.jobs.quantisation import lineage_of


class TensorSpec(BaseModel):
    name: str
    datatype: str = Field(description="Open Inference Protocol datatype: FP32, INT64, BYTES...")
    shape: list[int] = Field(description="-1 marks a dynamic dimension")


class VersionOut(BaseModel):
    name: str
    version: int
    task: Task
    status: VersionStatus
    sha256: str
    size_bytes: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: dict[str, int] = {}
    metadata: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    run_id: str | None = None
    dataset_id: str | None = None
    aliases: list[str] = []
    created_at: datetime
    quantized_from: int | None = Field(None, description="an int8 version: the version it was quantised from "
                                       "(metadata.quantisation holds the method, calibration set and parity)")


class AliasOut(BaseModel):
    name: str
    alias: str
    version: int
    updated_at: datetime


class ModelOut(BaseModel):
    name: str
    task: Task
    latest_version: int
    aliases: dict[str, int] = Field(description="alias -> version number")
    versions: list[VersionOut] = []
    created_at: datetime
    updated_at: datetime


class ModelSummary(BaseModel):
    name: str
    task: Task
    latest_version: int
    version_count: int
    aliases: dict[str, int]
    created_at: datetime
    updated_at: datetime


class AliasEventOut(BaseModel):
    from_version: int | None = Field(description="none: the alias was created by this move")
    to_version: int | None = Field(description="none: the alias was deleted")
    actor: str = Field(description="the name of the key that moved it, or `job <id>` for a training run")
    at: datetime


class AliasHistory(BaseModel):
    name: str
    alias: str
    version: int | None = Field(description="where the alias points now (none: deleted)")
    items: list[AliasEventOut] = Field(description="newest first")
    total: int
    limit: int
    offset: int


class AliasIn(BaseModel):
    version: int = Field(ge=1, le=INT32_MAX)


def version_out(v: ModelVersion) -> VersionOut:
    sig = v.signature or {}
    return VersionOut(
        name=v.model.name, version=v.version, task=v.task, status=v.status, sha256=v.sha256,
        size_bytes=v.size_bytes, inputs=sig.get("inputs", []), outputs=sig.get("outputs", []),
        opset=sig.get("opset", {}), metadata=v.meta or {}, metrics=v.metrics or {}, run_id=v.run_id,
        dataset_id=v.dataset_id, aliases=sorted(a.alias for a in v.model.aliases if a.version_id == v.id),
        created_at=v.created_at, quantized_from=(lineage_of(v) or {}).get("parent_version"),
    )


def _alias_map(m: RegisteredModel) -> dict[str, int]:
    return {a.alias: a.version.version for a in m.aliases}


def model_out(m: RegisteredModel) -> ModelOut:
    return ModelOut(
        name=m.name, task=m.task, latest_version=m.latest_version, aliases=_alias_map(m),
        versions=[version_out(v) for v in m.versions], created_at=m.created_at, updated_at=m.updated_at,
    )


def model_summary(m: RegisteredModel) -> ModelSummary:
    return ModelSummary(
        name=m.name, task=m.task, latest_version=m.latest_version, version_count=len(m.versions),
        aliases=_alias_map(m), created_at=m.created_at, updated_at=m.updated_at,
    )


def alias_out(name: str, a: ModelAlias) -> AliasOut:
    return AliasOut(name=name, alias=a.alias, version=a.version.version, updated_at=a.updated_at)
