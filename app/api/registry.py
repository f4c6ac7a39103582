"""Model registry routes: /v1/models/..."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status

from app.api.deps import AnyKey, ManagerDep, SessionDep, SettingsDep, StoreDep, TrainKey
from app.api.openapi import Offset, VersionPath, enum_of, problems
from app.api.schemas import (
    AliasEventOut,
    AliasHistory,
    AliasIn,
    AliasOut,
    ModelOut,
    ModelSummary,
    VersionOut,
    alias_out,
    model_out,
    model_summary,
    version_out,
)
from app.errors import Unprocessable
from app.inference import batching_config
from app.json_input import json_object
from app.registry import service
from app.registry.onnx_inspect import inspect_model
from models import TASKS, family
from models.common.errors import MetadataMismatch

router = APIRouter(prefix="/v1/models", tags=["registry"])


@router.post("/{name}/versions", status_code=status.HTTP_201_CREATED, response_model=VersionOut,
             responses=problems(409))
def upload_version(
    name: str, _: TrainKey, session: SessionDep, store: StoreDep, settings: SettingsDep, response: Response,
    file: Annotated[UploadFile, File(description="a self-contained .onnx file")],
    task: Annotated[str, Form(description="the model's task family", **enum_of(TASKS))],
    metadata: Annotated[str | None, Form(description="JSON object: labels, preprocessing, thresholds...")] = None,
) -> VersionOut:
    service.check_name(name)
    service.check_task(task)
    meta = _parse_metadata(metadata)
    with store.staged_copy(file.file, settings.max_model_bytes) as (path, sha256, size):
        signature = inspect_model(path, settings.model_check_timeout_s)
        _check_metadata_fits(task, signature, meta)
        version = service.register_version(
            session, store, name=name, task=task, staged_file=path, sha256=sha256, size_bytes=size,
            signature=signature, metadata=meta,
        )
    try:
        session.commit()
    except BaseException:
        store.remove(version.artifact_uri)
        raise
    response.headers["Location"] = f"/v1/models/{name}/versions/{version.version}"
    return version_out(version)


def _check_metadata_fits(task: str, signature: dict[str, Any], meta: dict[str, Any]) -> None:
    """Metadata that contradicts the model (labels for 3 classes on a 10-class output) would serve every
    answer with the wrong label: refused here. Metadata the task-level API cannot use otherwise (none at
    all, say) still makes a version that V2 serves, as before; encoder-decoder families check their
    files when they load."""
    contract = family(task)
    if contract is None or contract.multi_file:
        return
    try:
        contract.serving.make_spec(signature, meta)
    except MetadataMismatch as e:
        raise Unprocessable(f"field 'metadata': {e}", field="metadata") from None
    except (ValueError, KeyError, TypeError, IndexError):
        pass


def _parse_metadata(text: str | None) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    meta = json_object(text, field="metadata")
    try:
        batching_config.check(meta)
    except batching_config.BatchingError as e:
        raise Unprocessable(str(e), field=e.field) from None
    return meta


@router.get("", response_model=list[ModelSummary])
def list_models(_: AnyKey, session: SessionDep) -> list[ModelSummary]:
    return [model_summary(m) for m in service.list_models(session)]


@router.get("/{name}", response_model=ModelOut)
def get_model(name: str, _: AnyKey, session: SessionDep) -> ModelOut:
    return model_out(service.get_model(session, name))


@router.get("/{name}/versions/{version}", response_model=VersionOut)
def get_version(name: str, version: VersionPath, _: AnyKey, session: SessionDep) -> VersionOut:
    return version_out(service.get_version(session, name, version))


@router.delete("/{name}/versions/{version}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(409))
def delete_version(name: str, version: VersionPath, _: TrainKey, session: SessionDep, store: StoreDep,
                   models: ManagerDep) -> Response:
    key = service.delete_version(session, name, version)
    session.commit()
    models.notify()
    store.remove(key)  # after the commit: a failed commit must leave the files the row points to
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/{name}/aliases/{alias}", response_model=AliasOut, responses=problems(409))
def set_alias(name: str, alias: str, body: AliasIn, who: TrainKey, session: SessionDep,
              models: ManagerDep) -> AliasOut:
    row = service.set_alias(session, name, alias, body.version, who.name)
    session.commit()
    models.notify()  # this process follows at once; others within alias_poll_interval_s
    return alias_out(name, row)


@router.delete("/{name}/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT)
def delete_alias(name: str, alias: str, who: TrainKey, session: SessionDep, models: ManagerDep) -> Response:
    service.delete_alias(session, name, alias, who.name)
    session.commit()
    models.notify()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/aliases/{alias}/history", response_model=AliasHistory)
def alias_history(name: str, alias: str, _: AnyKey, session: SessionDep,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Offset = 0) -> AliasHistory:
    """Every move of the alias, newest first: from which version to which, by whom (the key's name, or the
    training job that registered the version), when."""
    events, total = service.alias_history(session, name, alias, limit, offset)
    current = next((a.version.version for a in service.get_model(session, name).aliases if a.alias == alias), None)
    return AliasHistory(name=name, alias=alias, version=current, total=total, limit=limit, offset=offset, items=[
        AliasEventOut(from_version=e.from_version, to_version=e.to_version, actor=e.actor, at=e.created_at)
        for e in events])


@router.post("/{name}/aliases/{alias}/rollback", response_model=AliasOut, responses=problems(409))
def rollback_alias(name: str, alias: str, who: TrainKey, session: SessionDep, models: ManagerDep) -> AliasOut:
    """Points the alias back at the version it pointed at before its last move (a second rollback undoes the
    first). 409 when it has pointed at no other version, or that version has been deleted."""
    row = service.rollback_alias(session, name, alias, who.name)
    session.commit()
    models.notify()
    return alias_out(name, row)
