"""Training jobs (rows of training_runs) as the API sees them: create, read, cancel, and find the ones
whose worker vanished. Functions flush but never commit; the route or the reaper loop commits."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.tables import Dataset, RegisteredModel, RunMetric, RunTag, TrainingRun, new_id
from app.errors import Conflict, NotFound, Unprocessable
from app.jobs import precheck
from app.jobs.broker import Broker
from app.jobs.config import validate_config
from app.registry.service import check_alias, check_name, check_task
from app.registry.store import ArtifactStore

log = logging.getLogger("dlserve.jobs")
TERMINAL = ("succeeded", "failed", "cancelled")


def create(session: Session, *, task: str, dataset_id: str, config: dict[str, Any], register_as: str | None,
           alias: str | None, store: ArtifactStore | None = None) -> TrainingRun:
    """A queued run, flushed; the caller publishes it and then commits (see app.api.jobs). `store`: where
    init_from's weights must be (without it, their files are not looked for)."""
    check_task(task)
    values = validate_config(task, config)
    # FOR UPDATE: a dataset being deleted right now cannot gain a run (the delete checks for runs).
    dataset = session.scalar(select(Dataset).where(Dataset.id == dataset_id).with_for_update())
    if dataset is None:
        raise Unprocessable(f"field 'dataset_id': no dataset with id {dataset_id!r}; upload one with POST /v1/datasets",
                            field="dataset_id")
    if dataset.task != task:
        raise Unprocessable(f"field 'dataset_id': dataset {dataset_id} is a {dataset.task} dataset, not {task}",
                            field="dataset_id")
    precheck.check(session, store, task, values, dataset)
    run_id = new_id()
    name = check_name(register_as or f"{task}-{run_id[:8]}")
    if alias is not None:
        check_alias(alias)
    other = session.scalar(select(RegisteredModel.task).where(RegisteredModel.name == name))
    if other is not None and other != task:
        raise Conflict(f"model {name!r} holds {other} versions; register this {task} job under another name")
    run = TrainingRun(id=run_id, task=task, dataset_id=dataset.id, params=values, status="queued", progress={},
                      latest_metrics={}, register_as=name, alias=alias, attempts=0, cancel_requested=False)
    session.add(run)
    session.flush()
    return run


def get(session: Session, run_id: str, *, for_update: bool = False) -> TrainingRun:
    stmt = select(TrainingRun).where(TrainingRun.id == run_id)
    run = session.scalar(stmt.with_for_update() if for_update else stmt)
    if run is None:
        raise NotFound(f"no job with id {run_id!r}")
    return run


def get_many(session: Session, run_ids: list[str]) -> list[TrainingRun]:
    return list(session.scalars(select(TrainingRun).where(TrainingRun.id.in_(run_ids))))


def annotate(session: Session, run_id: str, *, tags: list[str] | None, note: str | None) -> TrainingRun:
    """A person's tags (replacing the run's) and note ("" clears it); None leaves either as it is."""
    run = get(session, run_id, for_update=True)
    if tags is not None:
        session.execute(delete(RunTag).where(RunTag.run_id == run_id))
        session.add_all([RunTag(run_id=run_id, tag=tag) for tag in sorted(set(tags))])
    if note is not None:
        run.note = note or None
    session.flush()
    return run


def metrics(session: Session, run_id: str, key: str | None = None, after_id: int = 0) -> list[RunMetric]:
    stmt = select(RunMetric).where(RunMetric.run_id == run_id, RunMetric.id > after_id)
    if key:
        stmt = stmt.where(RunMetric.key == key)
    return list(session.scalars(stmt.order_by(RunMetric.id)))


def cancel(session: Session, run_id: str) -> TrainingRun:
    """A queued run is cancelled at once; a running one is asked to stop (its worker checks within a step)."""
    run = get(session, run_id, for_update=True)
    if run.status == "queued":
        finish(run, "cancelled")
    elif run.status == "running":
        run.cancel_requested = True
    elif run.status != "cancelled":
        raise Conflict(f"job {run_id} has already {run.status}; there is nothing to cancel", job_status=run.status)
    session.flush()
    return run


def finish(run: TrainingRun, status: str, error: str | None = None) -> None:
    run.status = status
    run.error = error
    run.finished_at = utcnow()
    run.worker = None


def reap(session: Session, broker: Broker, *, timeout_s: float, max_attempts: int,
         now: datetime | None = None) -> dict[str, str]:
    """Runs marked running whose worker stopped sending heartbeats: queued again (they resume from
    their checkpoint) or, after `max_attempts` deliveries, failed. Returns {run id: what happened}.
    Publishing happens before the caller commits: if the broker is down, the caller rolls back and
    the next pass tries again."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=timeout_s)
    stale = session.scalars(
        select(TrainingRun).where(TrainingRun.status == "running",
                                  or_(TrainingRun.heartbeat_at < cutoff, TrainingRun.heartbeat_at.is_(None)))
        .with_for_update(skip_locked=True)
    ).all()
    done: dict[str, str] = {}
    for run in stale:
        last = run.heartbeat_at.isoformat(timespec="seconds") if run.heartbeat_at else "never"
        if run.cancel_requested:
            finish(run, "cancelled")
            done[run.id] = "cancelled"
        elif run.attempts >= max_attempts:
            finish(run, "failed", f"the worker running this job stopped responding (last heartbeat {last}); "
                                  f"it was started {run.attempts} times and lost each time, so it was given up")
            done[run.id] = "failed"
        else:
            log.warning("job %s: worker %s silent since %s; queueing it again", run.id, run.worker, last)
            run.status = "queued"
            run.worker = None
            run.progress = {**(run.progress or {}), "requeued_at": now.isoformat(timespec="seconds")}
            done[run.id] = "requeued"
    session.flush()
    for run_id, what in done.items():
        if what == "requeued":
            broker.publish(run_id)
    return done
