"""FastAPI dependencies as Annotated aliases, so routes read as plain signatures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from app.auth import Principal, require_scope
from app.inference.manager import ModelManager
from app.registry.store import ArtifactStore
from app.settings import Settings
from app.web_sessions import COOKIE, CSRF_HEADER, check_csrf


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _store(request: Request) -> ArtifactStore:
    return request.app.state.store


async def _manager(request: Request) -> ModelManager:
    return request.app.state.models


async def _principal(request: Request) -> Principal:
    # The Authorization header read here, not declared as a parameter: FastAPI validates each declared
    # parameter, and solves each dependency, on every request, which on the predict path costs more than a
    # small model does (benchmarks/request_path.py). app/api/openapi.py documents the bearer scheme instead.
    authorization = request.headers.get("authorization")
    token = request.cookies.get(COOKIE) if authorization is None else None
    if token is not None:
        # A browser signed in with POST /v1/session (the key stays out of its reach); unsafe methods also
        # need the CSRF token. A request with an Authorization header is judged by that header alone.
        principal = await run_in_threadpool(request.app.state.web_sessions.principal, token)
        check_csrf(request.method, token, request.headers.get(CSRF_HEADER))
        request.state.principal = principal
        return principal
    # async with a cache in front: a key seen lately costs no thread hop and no database round trip,
    # which matters on the predict path.
    auth = request.app.state.auth
    principal = auth.cached(authorization) or await run_in_threadpool(auth.authenticate, authorization)
    request.state.principal = principal
    return principal


async def check_key(request: Request, scope: str) -> Principal:
    """The caller's principal if its key (or signed-in session) has `scope`: the routes' dependencies, and
    app/api/hot_path.py's inference routes."""
    return require_scope(await _principal(request), scope)


def _scoped(scope: str):
    # One dependency, not one on top of _principal: each level of dependencies costs FastAPI a solve.
    async def dependency(request: Request) -> Principal:
        return await check_key(request, scope)

    dependency.scope = scope  # (tests/app/test_hot_path.py holds the hot routes to the documented ones)
    _KEYED.add(dependency)
    return dependency


_KEYED = {_principal}


def takes_key(call) -> bool:
    """Whether a dependency checks the caller's key (app/api/openapi.py documents the route's security)."""
    return call in _KEYED


SessionDep = Annotated[Session, Depends(_session)]
SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[ArtifactStore, Depends(_store)]
ManagerDep = Annotated[ModelManager, Depends(_manager)]
AnyKey = Annotated[Principal, Depends(_principal)]  # any valid key: read-only registry access
ReadKey = Annotated[Principal, Depends(_scoped("read"))]  # read, train or admin: datasets, jobs, runs
PredictKey = Annotated[Principal, Depends(_scoped("predict"))]
TrainKey = Annotated[Principal, Depends(_scoped("train"))]
AdminKey = Annotated[Principal, Depends(_scoped("admin"))]
