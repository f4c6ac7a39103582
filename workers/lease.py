"""A worker's hold on a run: claiming it, keeping it (heartbeats), writing progress, letting it go.

Every write after the claim is conditional on `worker` still being this process, so a worker that
was presumed dead (and whose run was handed to another) finds out at its next write and stops,
instead of two workers training one run."""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.tables import RunMetric, TrainingRun
from app.jobs.service import TERMINAL, finish
from app.settings import Settings
from workers.runlog import RunLog

log = logging.getLogger("dlserve.worker")
ROW_WAIT_S = 15.0  # the API publishes before it commits; the row shows up right after


class Cancelled(Exception):
    pass


class LeaseLost(Exception):
    pass


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_gone(worker: str) -> bool:
    """True when `worker` is a process on this host that no longer runs (or is a zombie)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, ProcessLookupError):
        return True
    except OSError:
        return False


@dataclass
class Claimed:
    id: str
    task: str
    dataset_id: str | None
    params: dict[str, Any]
    register_as: str
    alias: str | None
    attempts: int


def claim(sessions: sessionmaker[Session], run_id: str, me: str, settings: Settings) -> Claimed | None:
    """Marks the run running for this process, or returns None when there is nothing to do: the run is
    finished, cancelled, given up, or alive in another worker (a duplicate delivery)."""
    deadline = time.monotonic() + ROW_WAIT_S
    silent: tuple | None = None  # (worker, heartbeat) seen not moving for a whole probe
    while True:
        with sessions() as session:
            run = session.scalar(select(TrainingRun).where(TrainingRun.id == run_id).with_for_update())
            if run is None:
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                log.warning("job %s: no such run (its submission was rolled back); dropping the message", run_id)
                return None
            if run.status in TERMINAL:
                log.info("job %s is already %s; nothing to do", run_id, run.status)
                return None
            seen = (run.worker, run.heartbeat_at)
            if run.status == "running" and run.worker not in (None, me) and seen != silent \
                    and not _process_gone(run.worker):
                session.rollback()
                if _alive(sessions, run_id, seen, settings):
                    log.info("job %s is running in %s; this delivery is a duplicate", run_id, seen[0])
                    return None
                silent = seen  # its worker is silent: take the run over (unless it moved meanwhile)
                continue
            if run.cancel_requested:
                finish(run, "cancelled")
                session.commit()
                return None
            if run.attempts >= settings.max_attempts:
                finish(run, "failed", f"the job was started {run.attempts} times and its worker was lost each "
                                      "time; it was given up")
                session.commit()
                return None
            now = utcnow()
            run.status, run.worker, run.heartbeat_at = "running", me, now
            run.attempts += 1
            run.started_at = run.started_at or now
            run.error = None
            # Until the first progress write (after the dataset is loaded) this is all there is to tell.
            run.progress = {**(run.progress or {}), "phase": "loading"}
            claimed = Claimed(run.id, run.task, run.dataset_id, dict(run.params or {}), run.register_as,
                              run.alias, run.attempts)
            session.commit()
            return claimed


def _alive(sessions: sessionmaker[Session], run_id: str, seen: tuple[str | None, datetime | None],
           settings: Settings) -> bool:
    """Watches the run for a while: a live worker moves its heartbeat (or finishes the run)."""
    end = time.monotonic() + settings.heartbeat_interval_s * 2.5
    while time.monotonic() < end:
        time.sleep(min(1.0, settings.heartbeat_interval_s / 2))
        with sessions() as session:
            row = session.execute(select(TrainingRun.status, TrainingRun.worker, TrainingRun.heartbeat_at)
                                  .where(TrainingRun.id == run_id)).one()
        if row.status != "running" or (row.worker, row.heartbeat_at) != seen:
            return True
        if _process_gone(row.worker or ""):
            return False
    return False


def release(sessions: sessionmaker[Session], run_id: str, me: str, status: str, error: str | None = None,
            runlog: RunLog | None = None) -> None:
    """Ends the run with `status` if this process still holds it (its last log lines in the same commit)."""
    with sessions() as session:
        run = session.scalar(select(TrainingRun).where(TrainingRun.id == run_id).with_for_update())
        if run is None or run.worker != me or run.status != "running":
            return
        finish(run, status, error[:4000] if error else None)
        if runlog is not None:
            runlog.write(session)
        session.commit()


def forget_metrics_after(sessions: sessionmaker[Session], run_id: str, step: int) -> None:
    """A resumed run repeats the steps after its checkpoint; their old rows go."""
    with sessions() as session:
        session.execute(delete(RunMetric).where(RunMetric.run_id == run_id, RunMetric.step > step))
        session.commit()


class Heartbeat:
    """A thread that marks the run alive every interval, whatever the training loop is doing."""

    def __init__(self, sessions: sessionmaker[Session], run_id: str, me: str, interval_s: float,
                 runlog: RunLog | None = None):
        self.sessions, self.run_id, self.me, self.interval_s = sessions, run_id, me, interval_s
        self.runlog = runlog  # its lines are written with each beat too (loading a dataset reports no progress)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{run_id[:8]}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with self.sessions() as session:
                    session.execute(update(TrainingRun).where(
                        TrainingRun.id == self.run_id, TrainingRun.worker == self.me,
                        TrainingRun.status == "running").values(heartbeat_at=utcnow()))
                    if self.runlog is not None:
                        self.runlog.write(session)
                    session.commit()
            except Exception:
                log.exception("heartbeat for job %s failed; retrying", self.run_id)


class Reporter:
    """The family's report(step, metrics) callback: buffers per-step metrics and writes them with the
    progress at most every `interval_s`, which is also when it notices a cancel request."""

    def __init__(self, sessions: sessionmaker[Session], run_id: str, me: str, *, total: int, epochs: int,
                 batch_size: int, interval_s: float, start_step: int = 0, extra: dict[str, Any] | None = None,
                 runlog: RunLog | None = None):
        self.sessions, self.run_id, self.me, self.runlog = sessions, run_id, me, runlog
        self.total, self.epochs, self.batch_size, self.interval_s = total, epochs, batch_size, interval_s
        self.start_step = self.step = start_step
        self.epoch = 0.0
        self.extra = dict(extra or {})
        self.latest: dict[str, float] = {}
        self.pending: list[dict[str, Any]] = []
        self.started = self.last_flush = time.monotonic()

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        epoch = metrics.get("epoch")
        for key, value in metrics.items():
            if key == "epoch":
                continue
            value = float(value)
            if not math.isfinite(value):
                raise FloatingPointError(f"training diverged: {key} is {value} at step {step}; "
                                         "try a lower lr or a smaller batch_size")
            self.pending.append({"run_id": self.run_id, "key": key, "step": step, "epoch": epoch, "value": value})
            self.latest[key] = value
        self.step = step
        before, self.epoch = self.epoch, float(epoch) if epoch is not None else self.epoch
        if int(self.epoch) > int(before):  # an epoch ended: a line in the job's log
            log.info("job %s: epoch %d of %d done at step %d: %s", self.run_id, int(self.epoch), self.epochs, step,
                     ", ".join(f"{k} {v:.4g}" for k, v in sorted(self.latest.items())))
        if time.monotonic() - self.last_flush >= self.interval_s:
            try:
                self.flush()
            except (OperationalError, InterfaceError) as e:
                # The database is restarting or unreachable: training goes on and the metrics wait
                # (they are written with the next flush that gets through). The heartbeat thread says
                # the same; if the outage outlasts heartbeat_timeout_s, the run is handed on instead.
                log.warning("job %s: progress not written, database unavailable (%s); training on",
                            self.run_id, type(e).__name__)
                self.last_flush = time.monotonic()

    def flush_for_checkpoint(self) -> bool:
        """Every metric so far written before a checkpoint is kept: a run resumed from it does not repeat the
        steps before it, so what was still pending would be lost with this process (seen: a worker killed
        between an epoch's checkpoint and the next flush left its run 8 steps short). False while the
        database is unavailable: that checkpoint is then not kept, and a resumed run repeats those steps."""
        try:
            self.flush()
            return True
        except (OperationalError, InterfaceError) as e:
            log.warning("job %s: checkpoint at step %d not kept, its metrics could not be written (%s)",
                        self.run_id, self.step, type(e).__name__)
            self.last_flush = time.monotonic()
            return False

    def progress(self, phase: str) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        done = self.step - self.start_step
        rate = done / elapsed if elapsed > 0 and done > 0 else None
        return {
            **self.extra, "phase": phase, "epoch": round(self.epoch, 4), "epochs": self.epochs, "step": self.step,
            "total": self.total, "fraction": round(self.step / self.total, 4) if self.total else None,
            "eta_s": round((self.total - self.step) / rate, 1) if rate and phase == "training" else None,
            "samples_per_s": round(rate * self.batch_size, 1) if rate else None,
        }

    def flush_patiently(self, phase: str, patience_s: float) -> None:
        """flush(phase), retried through a database outage of up to `patience_s`: at the end of training the
        metrics still pending exist nowhere else, and a run handed on would resume from its last checkpoint
        without them (seen: the last 318 steps' losses lost to a 2.5 s PostgreSQL restart)."""
        deadline = time.monotonic() + patience_s
        delay = 0.1
        while True:
            try:
                return self.flush(phase)
            except (OperationalError, InterfaceError) as e:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("job %s: %s not written yet, database unavailable (%s); retrying in %.1f s",
                            self.run_id, phase, type(e).__name__, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def flush(self, phase: str = "training") -> None:
        with self.sessions() as session:
            if self.pending:
                session.execute(insert(RunMetric), self.pending)
            held = session.execute(update(TrainingRun).where(
                TrainingRun.id == self.run_id, TrainingRun.worker == self.me, TrainingRun.status == "running",
            ).values(progress=self.progress(phase), latest_metrics=dict(self.latest), heartbeat_at=utcnow()))
            if held.rowcount == 0:
                session.rollback()
                raise LeaseLost(f"job {self.run_id} is no longer held by {self.me}")
            if self.runlog is not None:
                self.runlog.write(session)
            cancel = session.scalar(select(TrainingRun.cancel_requested).where(TrainingRun.id == self.run_id))
            session.commit()
        self.pending.clear()
        self.last_flush = time.monotonic()
        if cancel:
            raise Cancelled(f"job {self.run_id} was cancelled")
