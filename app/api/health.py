"""Liveness, readiness and Prometheus metrics: the only routes that need no API key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.errors import problem
from app.metrics import render

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request):
    checks: dict[str, str] = {}
    failed = []
    for name, check in request.app.state.readiness_checks.items():
        try:
            checks[name] = await run_in_threadpool(check)
        except Exception as e:  # each check says in its message what is wrong
            checks[name] = f"failing: {e}"
            failed.append(name)
    if failed:
        return problem(request, 503, f"not ready: {'; '.join(f'{n}: {checks[n]}' for n in failed)}",
                       checks=checks, headers={"Retry-After": "5"})
    return {"status": "ready", "checks": checks}


@router.get("/metrics", responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}})
async def metrics(request: Request) -> Response:
    return Response(render(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
