"""Liveness, readiness and Prometheus metrics.

/healthz and /readyz need no key (load balancers and orchestrators probe them), but without one they
say only alive, ready or not: the detailed checks name models, migrations and folders, which is for
key holders. /metrics needs a key unless DLSERVE_METRICS_PUBLIC opens it for a scraper on a private
network."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.problems import problem
from app.errors import DlserveError, Unauthorized
from app.metrics import render

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _has_key(request: Request) -> bool:
    """True for a valid key (any scope); False without one, or when it cannot be checked (the database
    is what is failing); a key that is sent and wrong is a 401, as everywhere else."""
    header = request.headers.get("authorization")
    if not header:
        return False
    auth = request.app.state.auth
    if auth.cached(header) is not None:
        return True
    try:
        await run_in_threadpool(auth.authenticate, header)
    except DlserveError:
        raise
    except Exception:  # noqa: BLE001 - the readiness checks below say what is wrong, to whoever may know
        return False
    return True


@router.get("/readyz")
async def readyz(request: Request):
    detailed = await _has_key(request)
    checks: dict[str, str] = {}
    failed = []
    for name, check in request.app.state.readiness_checks.items():
        try:
            checks[name] = await run_in_threadpool(check)
        except Exception as e:  # each check says in its message what is wrong
            checks[name] = f"failing: {e}"
            failed.append(name)
    if failed:
        if not detailed:
            return problem(request, 503, "not ready; send an API key for the checks that fail",
                           headers={"Retry-After": "5"})
        return problem(request, 503, f"not ready: {'; '.join(f'{n}: {checks[n]}' for n in failed)}",
                       checks=checks, headers={"Retry-After": "5"})
    return {"status": "ready", "checks": checks} if detailed else {"status": "ready"}


@router.get("/metrics", responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}})
async def metrics(request: Request) -> Response:
    if not request.app.state.settings.metrics_public and not await _has_key(request):
        raise Unauthorized("/metrics needs an API key (or DLSERVE_METRICS_PUBLIC=true on a private network)")
    registry, folder = request.app.state.metrics_registry, request.app.state.metrics_folder
    text = render(registry) if folder is None else await run_in_threadpool(render, registry, folder)  # files
    return Response(text, media_type=CONTENT_TYPE_LATEST)
