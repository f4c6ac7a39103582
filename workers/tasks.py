"""Celery tasks. Each takes ids and JSON only; the body is a few lines around a plain function."""

from __future__ import annotations

import logging

from billiard.exceptions import WorkerLostError
from celery import Task

from app.jobs.broker import TASK_NAME
from workers.celery_app import app, settings

log = logging.getLogger("dlserve.worker")


class TrainTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # The runner records its own failures; what reaches here killed the task from outside: the
        # hard time limit (the pool process was terminated). A lost worker is not a failure: the job
        # is delivered again and resumes.
        if isinstance(exc, WorkerLostError) or not args:
            return
        from app.db.session import make_engine, make_sessionmaker
        from app.db.tables import TrainingRun
        from app.jobs.service import finish

        engine = make_engine(settings.resolved_database_url)
        try:
            with make_sessionmaker(engine)() as session:
                run = session.get(TrainingRun, args[0], with_for_update=True)
                if run is not None and run.status == "running":
                    finish(run, "failed", f"the run was stopped from outside: {type(exc).__name__}: {exc} "
                                          f"(time limit DLSERVE_TRAIN_TIME_LIMIT_S={settings.train_time_limit_s})")
                    session.commit()
        finally:
            engine.dispose()


@app.task(name=TASK_NAME, base=TrainTask, bind=True)
def train(self, run_id: str) -> str:
    from workers.runner import run_training  # torch is imported here, inside the pool process

    return run_training(run_id, settings)
