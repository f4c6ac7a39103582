"""The Celery app of the training workers: `celery -A workers.celery_app worker -Q training`
(`dlserve worker` runs the same with the settings' queue). Configuration lives in app.jobs.broker,
shared with the API that publishes; this module adds what only a worker process does."""

from __future__ import annotations

import ctypes
import logging
import signal

from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutting_down

from app.db.session import make_engine, make_sessionmaker
from app.jobs.broker import Broker, make_celery
from app.jobs.reaper import reaper_thread
from app.settings import get_settings
from models import register_all

log = logging.getLogger("dlserve.worker")
settings = get_settings()
register_all(settings.families)  # and the entry points; pool processes are forked from here and inherit it
app = make_celery(settings)
app.conf.include = ["workers.tasks"]
_reaper = None


@worker_init.connect
def _preload(**_):
    # Imported once here, each fresh pool process (one per job) starts in milliseconds instead of
    # seconds. Importing torch does not initialise CUDA: that happens inside the task.
    import workers.runner  # noqa: F401


@worker_ready.connect
def _start_reaper(sender=None, **_):
    # Right at start-up (a worker restarted after a crash picks up what the crash left) and then
    # periodically: with the file-system broker nobody else gives a lost job back.
    global _reaper
    broker = Broker(settings, celery=app)
    broker.ensure()
    sessions = make_sessionmaker(make_engine(settings.resolved_database_url))
    interval = max(1.0, min(settings.heartbeat_timeout_s / 2, 30.0))
    _reaper = reaper_thread(settings, sessions, broker, interval)


@worker_shutting_down.connect
def _stop_reaper(**_):
    if _reaper is not None:
        _reaper.stop.set()


@worker_process_init.connect
def _die_with_parent(**_):
    # A pool process whose parent was killed must not train on as an orphan (nobody would requeue or
    # acknowledge its job): ask Linux to kill it with its parent.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
