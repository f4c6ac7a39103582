"""Training job routes: /v1/jobs... (submit, list and sort the runs table, inspect, tag and annotate, cancel).
Metrics and comparisons are in app/api/job_metrics.py, the live event stream in app/api/job_events.py."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy.orm import Session

from app.api.deps import ReadKey, SessionDep, StoreDep, TrainKey
from app.api.job_schemas import JobIn, JobOut, JobPage, JobPatch, job_out
from app.api.openapi import Offset, Task, enum_of, problems
from app.db.tables import RUN_STATUSES, TrainingRun
from app.errors import Unprocessable
from app.jobs import service
from app.jobs.broker import Broker
from app.jobs.listing import SORT_PATTERN, TAG_PATTERN, RunQuery, extras_of, list_runs

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _broker(request: Request) -> Broker:
    return request.app.state.broker


BrokerDep = Annotated[Broker, Depends(_broker)]


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
    return described(session, run)


SORT_HELP = ("a column: created_at, started_at, finished_at, duration_s, status (queued, running, succeeded, failed, "
             "cancelled), task, dataset_name, progress (its fraction), best_metric (the family's, GET /v1/families: "
             "with order=desc the best runs first, whichever way their metric points), or metric:<key> (the latest "
             "value of any metric, e.g. metric:val_loss); runs without a value come last")


@router.get("", response_model=JobPage)
def list_jobs(
    _: ReadKey, session: SessionDep, task: Task | None = None,
    status: Annotated[str | None, Query(**enum_of(RUN_STATUSES))] = None,
    dataset_id: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9]+$")] = None,
    tag: Annotated[str | None, Query(max_length=64, pattern=TAG_PATTERN, description="runs with this tag")] = None,
    q: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$",
                                   description="text in the run's id, model name or note (any case)")] = None,
    sort: Annotated[str, Query(max_length=140, pattern=SORT_PATTERN, description=SORT_HELP)] = "created_at",
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Offset = 0,
) -> JobPage:
    if status and status not in RUN_STATUSES:
        raise Unprocessable(f"status {status!r} is not one of {', '.join(RUN_STATUSES)}", field="status")
    query = RunQuery(status=status, task=task, dataset_id=dataset_id, tag=tag, q=q or None, sort=sort, order=order,
                     limit=limit, offset=offset)
    rows, total = list_runs(session, query)
    runs = [run for run, _ in rows]
    extras = extras_of(session, runs, {run.id: name for run, name in rows})
    return JobPage(items=[job_out(r, extras[r.id]) for r in runs], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, _: ReadKey, session: SessionDep) -> JobOut:
    return described(session, service.get(session, job_id))


@router.patch("/{job_id}", response_model=JobOut)
def annotate_job(job_id: str, body: JobPatch, _: TrainKey, session: SessionDep) -> JobOut:
    """Tags (they replace the run's; GET /v1/jobs?tag= finds them) and a free-text note; a field left out is
    kept. Either is shown as text wherever it appears, never as markup."""
    run = service.annotate(session, job_id, tags=body.tags, note=body.note)
    session.commit()
    return described(session, run)


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
             responses=problems(409))
def cancel_job(job_id: str, _: TrainKey, session: SessionDep) -> JobOut:
    run = service.cancel(session, job_id)
    session.commit()
    return described(session, run)


def described(session: Session, run: TrainingRun) -> JobOut:
    return job_out(run, extras_of(session, [run])[run.id])
