"""A job as it runs: GET /v1/jobs/{id}/events (server-sent events: its state, new metric points and new log
lines, pushed while it runs) and GET /v1/jobs/{id}/log (its log as text, from an offset on)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, StreamingResponse

from app.api.deps import ReadKey, SessionDep
from app.api.job_schemas import job_out
from app.api.openapi import INT32_MAX
from app.jobs import logs, service
from app.jobs.listing import extras_of

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
EVENT_POLL_S = 0.5
KEEPALIVE_S = 15.0


LogOffset = Annotated[int, Query(ge=0, le=INT32_MAX, description=(
    "bytes of the log already read: the X-Log-Offset (or a log event's next_offset) of the last answer"))]


@router.get("/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "events `progress` (the job), `metrics` (new rows), `log` ({offset, text, "
                                            "next_offset}: new lines of its log), then `end` (the job, finished)"}})
def job_events(job_id: str, _: ReadKey, request: Request, session: SessionDep, log_offset: LogOffset = 0) \
        -> StreamingResponse:
    service.get(session, job_id)  # 404 now, not inside the stream
    session.close()
    return StreamingResponse(_events(request, job_id, log_offset), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/{job_id}/log", response_class=PlainTextResponse, responses={200: {
    "content": {"text/plain": {"schema": {"type": "string"}}},
    "description": "the log from `offset` on; `[... N bytes dropped ...]` marks what was not kept",
    "headers": {"X-Log-Offset": {"description": "where to continue (?offset=)", "schema": {"type": "integer"}},
                "X-Log-Complete": {"description": "true once the job has finished: nothing more will come",
                                   "schema": {"type": "string", "enum": ["true", "false"]}}}}})
def job_log(job_id: str, _: ReadKey, session: SessionDep, offset: LogOffset = 0) -> PlainTextResponse:
    """The job's log as its worker wrote it (its own lines, the family's, and tracebacks), kept in the database
    within DLSERVE_JOB_LOG_MAX_BYTES: the first half and the last half; follow it with ?offset=X-Log-Offset."""
    done = service.get(session, job_id).status in service.TERMINAL  # first: the lines of a finished job are all in
    part = logs.read(session, job_id, offset)
    return PlainTextResponse(part.text, headers={"X-Log-Offset": str(part.next_offset), "Cache-Control": "no-store",
                                                "X-Log-Complete": "true" if done else "false"})


def _snapshot(sessions, job_id: str, after_id: int, log_offset: int):
    with sessions() as session:
        run = service.get(session, job_id)
        state = job_out(run, extras_of(session, [run])[run.id]).model_dump(mode="json")
        rows = [{"id": m.id, "key": m.key, "step": m.step, "epoch": m.epoch, "value": m.value}
                for m in service.metrics(session, job_id, after_id=after_id)]
        part = logs.read(session, job_id, log_offset)
    return state, rows, part


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _events(request: Request, job_id: str, log_offset: int):
    sessions = request.app.state.sessions
    last_state: dict[str, Any] | None = None
    after_id, last_sent = 0, time.monotonic()
    while not await request.is_disconnected():
        state, rows, part = await run_in_threadpool(_snapshot, sessions, job_id, after_id, log_offset)
        if rows:
            after_id = rows[-1]["id"]
            yield _sse("metrics", rows)
            last_sent = time.monotonic()
        if part.text:
            yield _sse("log", {"offset": log_offset, "text": part.text, "next_offset": part.next_offset})
            log_offset, last_sent = part.next_offset, time.monotonic()
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
