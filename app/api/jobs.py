"""Training job routes: /v1/jobs... (submit, list, inspect, metrics history, live events, cancel)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import ReadKey, SessionDep, StoreDep, TrainKey
from app.api.openapi import Offset, RunStatus, Task, enum_of, problems
from app.db.tables import RUN_STATUSES, TrainingRun
from app.jobs import service
from app.jobs.broker import Broker
from models import TASKS

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
EVENT_POLL_S = 0.5
KEEPALIVE_S = 15.0


def _broker(request: Request) -> Broker:
    return request.app.state.broker


BrokerDep = Annotated[Broker, Depends(_broker)]


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(description="the task family", **enum_of(TASKS))
    dataset_id: str
    config: dict[str, Any] = Field(default_factory=dict, description="hyperparameters; see the family's Config")
    register_as: str | None = Field(None, description="model name for the trained version (default: <task>-<id>)")
    alias: str | None = Field(None, description="alias to point at the new version, e.g. production")


class ModelVersionRef(BaseModel):
    name: str
    version: int


class JobOut(BaseModel):
    id: str
    task: Task
    dataset_id: str | None
    status: RunStatus
    config: dict[str, Any]
    register_as: str | None
    alias: str | None
    progress: dict[str, Any] = Field(description="epoch, epochs, step, total, fraction, eta_s, samples_per_s")
    metrics: dict[str, Any] = Field(description="the latest value of each metric")
    error: str | None
    attempts: int
    cancel_requested: bool
    model_version: ModelVersionRef | None
    worker: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


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


def job_out(run: TrainingRun, version: tuple[str, int] | None) -> JobOut:
    return JobOut(
        id=run.id, task=run.task, dataset_id=run.dataset_id, status=run.status, config=run.params or {},
        register_as=run.register_as, alias=run.alias, progress=run.progress or {}, metrics=run.latest_metrics or {},
        error=run.error, attempts=run.attempts, cancel_requested=run.cancel_requested,
        model_version=ModelVersionRef(name=version[0], version=version[1]) if version else None, worker=run.worker,
        heartbeat_at=run.heartbeat_at, created_at=run.created_at, started_at=run.started_at,
        finished_at=run.finished_at,
    )


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
             responses=problems(409, unavailable="the broker cannot take the job (nothing is recorded)"))
def submit_job(body: JobIn, _: TrainKey, session: SessionDep, broker: BrokerDep, store: StoreDep,
               response: Response) -> JobOut:
    run = service.create(session, task=body.task, dataset_id=body.dataset_id, config=body.config,
                         register_as=body.register_as, alias=body.alias, store=store)
    # Published before the commit: a broker that cannot take it leaves nothing recorded (the session
    # rolls back), and a worker that gets the message first waits for the row to appear.
    broker.publish(run.id)
    session.commit()
    response.headers["Location"] = f"/v1/jobs/{run.id}"
    return job_out(run, None)


@router.get("", response_model=JobPage)
def list_jobs(
    _: ReadKey, session: SessionDep, task: Task | None = None,
    status: Annotated[str | None, Query(**enum_of(RUN_STATUSES))] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Offset = 0,
) -> JobPage:
    runs, total = service.list_page(session, status, task, limit, offset)
    versions = service.versions_of(session, [r.id for r in runs])
    return JobPage(items=[job_out(r, versions.get(r.id)) for r in runs], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, _: ReadKey, session: SessionDep) -> JobOut:
    run = service.get(session, job_id)
    return job_out(run, service.versions_of(session, [run.id]).get(run.id))


@router.get("/{job_id}/metrics", response_model=MetricHistory)
def job_metrics(job_id: str, _: ReadKey, session: SessionDep, key: str | None = None) -> MetricHistory:
    service.get(session, job_id)
    rows = service.metrics(session, job_id, key)
    return MetricHistory(job_id=job_id, items=[
        MetricOut(key=m.key, step=m.step, epoch=m.epoch, value=m.value, created_at=m.created_at) for m in rows])


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
             responses=problems(409))
def cancel_job(job_id: str, _: TrainKey, session: SessionDep) -> JobOut:
    run = service.cancel(session, job_id)
    session.commit()
    return job_out(run, None)


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
        state = job_out(run, service.versions_of(session, [run.id]).get(run.id)).model_dump(mode="json")
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
