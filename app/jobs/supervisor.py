"""`dlserve serve` on the embedded default runs one training worker beside the API: started here,
restarted if it dies, stopped when the API stops. A job interrupted by the stop is picked up again
(from its checkpoint) when the service next starts."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading

log = logging.getLogger("dlserve.jobs")
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If `dlserve serve` is killed outright, its worker goes too instead of training on unsupervised.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class WorkerSupervisor:
    def __init__(self, command: list[str] | None = None, grace_s: float = 5.0):
        self.command = command or [sys.executable, "-m", "app.cli", "worker"]
        self.grace_s = grace_s
        self.proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        # The thread that forks the worker must outlive it: PDEATHSIG follows the parent *thread*.
        self._thread = threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _supervise(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            # Its own process group, so that stopping it reaches its pool processes too.
            self.proc = subprocess.Popen(self.command, process_group=0, preexec_fn=_die_with_parent)
            log.info("started training worker (pid %d)", self.proc.pid)
            code = self.proc.wait()
            if self._stopping.is_set():
                return
            log.warning("training worker exited with %s; restarting in %.0f s", code, backoff)
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, 30.0)

    def stop(self) -> None:
        self._stopping.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            # SIGTERM asks Celery for a warm shutdown, which waits for the running job; past the grace
            # period the job is interrupted (it resumes from its checkpoint on the next start).
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self.grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self._thread.join(timeout=10)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
