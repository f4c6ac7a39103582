"""Each job's log, captured by its worker while it runs: a logging handler installed for the run takes the
records of the run's own thread and its heartbeat thread (dlserve.worker's, the family's, any library's),
and writes them to the database with the progress and the heartbeats (app/jobs/logs.py), so that an API
on another host serves them (GET /v1/jobs/{id}/log, and `log` events while it runs). Between two writes
the buffer holds at most job_log_max_bytes; what does not fit is dropped and counted."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from app.jobs import logs

# Loggers brought to INFO for the run (when set quieter), so their records reach the handler.
_LOUD_ENOUGH = ("dlserve", "models")


class RunLog(logging.Handler):
    def __init__(self, run_id: str, max_bytes: int, start: int):
        super().__init__(logging.INFO)
        self.run_id, self.max_bytes = run_id, max_bytes
        self.offset = start  # where the next chunk starts in the whole log
        self.thread = threading.get_ident()
        self.heartbeat_thread = f"heartbeat-{run_id[:8]}"  # workers.lease.Heartbeat's name for it
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._dropped = 0
        self._lock = threading.Lock()
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        formatter.converter = time.gmtime  # UTC, as every time dlserve shows
        self.setFormatter(formatter)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread == self.thread or record.threadName == self.heartbeat_thread

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        size = len(line.encode())
        with self._lock:
            if self._pending_bytes + size > self.max_bytes:
                self._dropped += size
                return
            self._pending.append(line)
            self._pending_bytes += size

    def write(self, session: Session) -> None:
        """Adds what was logged since the last write to `session` (the caller commits): inside the progress
        and heartbeat transactions, and the one that ends the run."""
        with self._lock:
            if not self._pending and not self._dropped:
                return
            # what overflowed the buffer came after what is in it: the marker goes last
            text = "".join(self._pending) + (logs.dropped_marker(self._dropped) if self._dropped else "")
            self._pending, self._pending_bytes, self._dropped = [], 0, 0
            self.offset = logs.append(session, self.run_id, self.offset, text, self.max_bytes)

    def write_now(self, sessions: sessionmaker[Session]) -> None:
        try:
            with sessions() as session:
                self.write(session)
                session.commit()
        except Exception:  # the database is away: the lines are lost, the run is not
            logging.getLogger("dlserve.worker").warning("job %s: its last log lines could not be written",
                                                        self.run_id, exc_info=True)


@contextmanager
def captured(sessions: sessionmaker[Session], run_id: str, max_bytes: int,
             family_package: str | None) -> Iterator[RunLog]:
    """The run's log handler, installed on the root logger for the time of the run and written at its end."""
    with sessions() as session:
        start = logs.end_offset(session, run_id)  # a run delivered again goes on with its log
    handler = RunLog(run_id, max_bytes, start)
    names = _LOUD_ENOUGH + ((family_package,) if family_package and not family_package.startswith("models") else ())
    quiet = {n: logging.getLogger(n).level for n in names if logging.getLogger(n).getEffectiveLevel() > logging.INFO}
    for name in quiet:
        logging.getLogger(name).setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)
        handler.write_now(sessions)
