"""The training queue: one Celery configuration for the API (which publishes) and the workers (which
consume). Redis in production; kombu's file-system transport under DLSERVE_HOME/broker on the
embedded default, where it needs no service at all."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from celery import Celery
from kombu.utils.url import maybe_sanitize_url

from app.errors import ServiceUnavailable
from app.private import private_dir
from app.settings import Settings

log = logging.getLogger("dlserve.jobs")
TASK_NAME = "dlserve.train"


def file_broker_dirs(settings: Settings) -> dict[str, Path]:
    root = settings.broker_dir
    return {"queue": root / "queue", "processed": root / "processed", "control": root / "control"}


def celery_config(settings: Settings) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "broker_url": settings.resolved_broker_url,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        # The job is acknowledged only when the task returns, and given back when the process
        # running it dies, so a killed worker's job is delivered again.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.train_soft_time_limit_s,
        "task_time_limit": settings.train_time_limit_s,
        "task_default_queue": settings.queue,
        "task_routes": {TASK_NAME: {"queue": settings.queue}},
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 3,
        # A fresh process per job: whatever a run leaves in memory (CUDA caches included) goes with it.
        "worker_max_tasks_per_child": 1,
        "worker_hijack_root_logger": False,
    }
    if settings.uses_file_broker:
        dirs = file_broker_dirs(settings)
        conf["broker_transport_options"] = {
            "data_folder_in": str(dirs["queue"]), "data_folder_out": str(dirs["queue"]),
            "processed_folder": str(dirs["processed"]), "store_processed": False,
            "control_folder": str(dirs["control"]), "polling_interval": 0.5,
        }
        conf["worker_enable_remote_control"] = False  # no broadcast over files: nothing listens
    elif settings.resolved_broker_url.startswith(("redis:", "rediss:")):
        conf["broker_transport_options"] = {
            # An unacknowledged job returns to the queue after this long; longer than any run may
            # last, so a live run is never handed to a second worker (the heartbeat reaper is the
            # quick path for a dead one).
            "visibility_timeout": settings.train_time_limit_s + 600,
            "socket_connect_timeout": 3,
        }
    return conf


def make_celery(settings: Settings, name: str = "dlserve") -> Celery:
    app = Celery(name, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


class Broker:
    """Publishes training jobs; an unreachable broker is a 503 the client can retry."""

    def __init__(self, settings: Settings, celery: Celery | None = None):
        self.settings = settings
        self.celery = celery or make_celery(settings, "dlserve-api")

    def ensure(self) -> None:
        if self.settings.uses_file_broker:
            private_dir(self.settings.broker_dir)
            for d in file_broker_dirs(self.settings).values():
                private_dir(d)

    def publish(self, run_id: str) -> None:
        try:
            self.celery.send_task(TASK_NAME, args=[run_id], queue=self.settings.queue, retry=True,
                                  retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5,
                                                "interval_max": 1})
        except Exception as e:  # kombu's OperationalError, OSError from the file transport, ...
            where = maybe_sanitize_url(self.settings.resolved_broker_url)
            log.warning("cannot publish job %s to %s: %s", run_id, where, e)
            raise ServiceUnavailable(
                f"the job queue ({where}) cannot take the job right now ({e}); nothing was recorded, try again shortly",
                retry_after=self.settings.publish_retry_after_s) from e
