"""Registry operations on the database. Functions flush but never commit: the caller (a request or a
task) owns the transaction, and removes artifact files only after its commit succeeded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.db.tables import AliasEvent, ModelAlias, ModelVersion, RegisteredModel
from app.errors import Conflict, NotFound, Unprocessable
from app.registry.store import ArtifactStore
from models import TASKS

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# An alias starts with a letter so it can never be mistaken for a version number.
ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
DEFAULT_ALIAS = "production"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise Unprocessable(f"model name {name!r} is not valid: use 1-128 letters, digits, '.', '_' or '-', "
                            "starting with a letter or digit", field="name")
    return name


def check_alias(alias: str) -> str:
    if not ALIAS_RE.match(alias):
        raise Unprocessable(f"alias {alias!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
                            "starting with a letter", field="alias")
    return alias


def check_task(task: str) -> str:
    if task not in TASKS:
        raise Unprocessable(f"field 'task': {task!r} is not a task; choose one of {', '.join(TASKS)}", field="task")
    return task


def register_version(
    session: Session, store: ArtifactStore, *, name: str, task: str, staged_file: Path, sha256: str,
    size_bytes: int, signature: dict[str, Any], metadata: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None, run_id: str | None = None, dataset_id: str | None = None,
    extra_files: dict[str, Path] | None = None,
) -> ModelVersion:
    """Numbers and records a new version and moves its file into the store. On any failure before the
    caller's commit, the caller must call `store.remove(version.artifact_uri)` (see `discard_artifact`)."""
    check_name(name)
    check_task(task)
    model = _model_for_update(session, name, task)
    if model.task != task:
        raise Conflict(f"model {name!r} holds {model.task} versions; a {task} model needs another name")
    model.latest_version += 1
    number = model.latest_version
    key = store.put_model(name, number, staged_file, {
        "name": name, "version": number, "task": task, "sha256": sha256, **signature,
        "metadata": metadata or {},
    }, extra_files)
    version = ModelVersion(
        model=model, version=number, task=task, status="ready", run_id=run_id, dataset_id=dataset_id,
        metrics=metrics or {}, meta=metadata or {}, signature=signature, artifact_uri=key, sha256=sha256,
        size_bytes=size_bytes,
    )
    session.add(version)
    try:
        session.flush()
    except BaseException:
        store.remove(key)
        raise
    return version


def _model_for_update(session: Session, name: str, task: str) -> RegisteredModel:
    # FOR UPDATE serialises concurrent uploads to one name on PostgreSQL (SQLite's BEGIN IMMEDIATE
    # already does), so two uploads can never take the same version number.
    stmt = select(RegisteredModel).where(RegisteredModel.name == name).with_for_update()
    model = session.scalar(stmt)
    if model is not None:
        return model
    try:
        with session.begin_nested():
            model = RegisteredModel(name=name, task=task, latest_version=0)
            session.add(model)
    except IntegrityError:
        model = session.scalar(stmt)  # another request created it first
    return model


def list_models(session: Session) -> list[RegisteredModel]:
    stmt = select(RegisteredModel).options(
        selectinload(RegisteredModel.aliases).selectinload(ModelAlias.version),
        selectinload(RegisteredModel.versions),
    ).order_by(RegisteredModel.name)
    return list(session.scalars(stmt))


def get_model(session: Session, name: str) -> RegisteredModel:
    model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name).options(
        selectinload(RegisteredModel.aliases).selectinload(ModelAlias.version),
        selectinload(RegisteredModel.versions),
    ))
    if model is None:
        raise NotFound(f"no model named {name!r}")
    return model


def get_version(session: Session, name: str, version: int) -> ModelVersion:
    row = session.scalar(
        select(ModelVersion).join(RegisteredModel).where(RegisteredModel.name == name, ModelVersion.version == version)
    )
    if row is None:
        get_model(session, name)  # 404 for the model itself when that is what is missing
        raise NotFound(f"model {name!r} has no version {version}")
    return row


def resolve(session: Session, name: str, version: int | None = None, alias: str | None = None) -> ModelVersion:
    """The version a request means: an explicit number, else an alias (default `production`)."""
    if version is not None:
        return get_version(session, name, version)
    alias = alias or DEFAULT_ALIAS
    row = session.scalar(
        select(ModelVersion).join(ModelAlias, ModelAlias.version_id == ModelVersion.id)
        .join(RegisteredModel, RegisteredModel.id == ModelAlias.model_id)
        .where(RegisteredModel.name == name, ModelAlias.alias == alias)
    )
    if row is None:
        get_model(session, name)
        raise NotFound(f"model {name!r} has no alias {alias!r}; set one with PUT /v1/models/{name}/aliases/{alias}")
    return row


def aliases_of(version: ModelVersion) -> list[str]:
    return sorted(a.alias for a in version.model.aliases if a.version_id == version.id)


def delete_version(session: Session, name: str, version: int) -> str:
    """Deletes the row and returns the artifact key, to be removed once the caller has committed."""
    row = get_version(session, name, version)
    pinned = aliases_of(row)
    if pinned:
        raise Conflict(f"version {version} of {name!r} is what alias(es) {', '.join(pinned)} point at; "
                       "move or delete the alias first", aliases=pinned)
    key = row.artifact_uri
    session.delete(row)
    session.flush()
    return key


def set_alias(session: Session, name: str, alias: str, version: int, actor: str = "unknown") -> ModelAlias:
    """Points `alias` at `version`; the move is recorded with `actor` (a key's name, or "job <id>")."""
    check_alias(alias)
    target = get_version(session, name, version)
    if target.status != "ready":
        raise Conflict(f"version {version} of {name!r} is {target.status}, not ready to serve")
    row = session.scalar(select(ModelAlias).where(ModelAlias.model_id == target.model_id, ModelAlias.alias == alias))
    before = row.version.version if row is not None else None
    if row is None:
        row = ModelAlias(model_id=target.model_id, alias=alias, version=target)
        session.add(row)
    else:
        row.version = target
    if before != version:
        session.add(AliasEvent(model_id=target.model_id, alias=alias, from_version=before, to_version=version,
                               actor=actor[:200]))
    session.flush()
    return row


def delete_alias(session: Session, name: str, alias: str, actor: str = "unknown") -> None:
    model = get_model(session, name)
    row = next((a for a in model.aliases if a.alias == alias), None)
    if row is None:
        raise NotFound(f"model {name!r} has no alias {alias!r}")
    session.add(AliasEvent(model_id=model.id, alias=alias, from_version=row.version.version, to_version=None,
                           actor=actor[:200]))
    model.aliases.remove(row)
    session.flush()


def alias_history(session: Session, name: str, alias: str, limit: int, offset: int) -> tuple[list[AliasEvent], int]:
    """The alias's moves, newest first, and how many there are (also of an alias deleted since)."""
    model = get_model(session, name)
    where = (AliasEvent.model_id == model.id, AliasEvent.alias == alias)
    total = session.scalar(select(func.count()).select_from(AliasEvent).where(*where)) or 0
    rows = session.scalars(select(AliasEvent).where(*where).order_by(AliasEvent.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def rollback_alias(session: Session, name: str, alias: str, actor: str) -> ModelAlias:
    """Moves the alias back to the version it pointed at before its last move (a second rollback undoes the
    first, like `kubectl rollout undo`). 409 when there is no earlier version, or it has been deleted."""
    model = get_model(session, name)
    row = next((a for a in model.aliases if a.alias == alias), None)
    if row is None:
        raise NotFound(f"model {name!r} has no alias {alias!r}")
    current = row.version.version
    last = session.scalar(select(AliasEvent).where(AliasEvent.model_id == model.id, AliasEvent.alias == alias,
                                                   AliasEvent.to_version == current)
                          .order_by(AliasEvent.id.desc()).limit(1))
    if last is None or last.from_version is None:
        raise Conflict(f"alias {alias!r} of {name!r} has pointed at no other version before version {current}; "
                       "there is nothing to roll back to", alias_version=current)
    previous = last.from_version
    exists = session.scalar(select(ModelVersion.id).where(ModelVersion.model_id == model.id,
                                                          ModelVersion.version == previous))
    if exists is None:
        raise Conflict(f"alias {alias!r} of {name!r} pointed at version {previous} before, which has been deleted; "
                       f"point it at another version with PUT /v1/models/{name}/aliases/{alias}",
                       previous_version=previous)
    return set_alias(session, name, alias, previous, actor)
