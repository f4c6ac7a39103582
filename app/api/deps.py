"""FastAPI dependencies as Annotated aliases, so routes read as plain signatures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from app.auth import Principal, require_scope
from app.registry.store import ArtifactStore
from app.settings import Settings


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _store(request: Request) -> ArtifactStore:
    return request.app.state.store


def _principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    principal = request.app.state.auth.authenticate(authorization)
    request.state.principal = principal
    return principal


def _scoped(scope: str):
    def dependency(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        return require_scope(principal, scope)

    return dependency


SessionDep = Annotated[Session, Depends(_session)]
SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[ArtifactStore, Depends(_store)]
AnyKey = Annotated[Principal, Depends(_principal)]  # any valid key: read-only registry access
PredictKey = Annotated[Principal, Depends(_scoped("predict"))]
TrainKey = Annotated[Principal, Depends(_scoped("train"))]
AdminKey = Annotated[Principal, Depends(_scoped("admin"))]
