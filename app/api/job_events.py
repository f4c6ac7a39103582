"""GET /v1/jobs/{id}/events: a job's live event stream (server-sent events), pushed while it runs."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.api.deps import ReadKey, SessionDep
from app.api.job_schemas import job_out
from app.jobs import service
from app.jobs.listing import extras_of

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
EVENT_POLL_S = 0.5
KEEPALIVE_S = 15.0


@router.get("/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "events `progress` (the job), `metrics` (new rows), then `end`"}})
def job_events(job_id: str, _: ReadKey, request: Request, session: SessionDep) -> StreamingResponse:
    service.get(session, job_id)  # 404 now, not inside the stream
    session.close()
    return StreamingResponse(_events(request, job_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _snapshot(sessions, job_id: str, after_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with sessions() as session:
        run = service.get(session, job_id)
        state = job_out(run, extras_of(session, [run])[run.id]).model_dump(mode="json")
        rows = [{"id": m.id, "key": m.key, "step": m.step, "epoch": m.epoch, "value": m.value}
                for m in service.metrics(session, job_id, after_id=after_id)]
    return state, rows


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _events(request: Request, job_id: str):
    sessions = request.app.state.sessions
    last_state: dict[str, Any] | None = None
    after_id, last_sent = 0, time.monotonic()
    while not await request.is_disconnected():
        state, rows = await run_in_threadpool(_snapshot, sessions, job_id, after_id)
        if rows:
            after_id = rows[-1]["id"]
            yield _sse("metrics", rows)
            last_sent = time.monotonic()
        if state != last_state:
            last_state = state
            if state["status"] in service.TERMINAL:
                yield _sse("end", state)
                return
            yield _sse("progress", state)
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent > KEEPALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(EVENT_POLL_S)
