"""Prometheus metrics, one registry per app instance so several apps (tests, workers) never collide.

With several API processes on a host (`dlserve serve --workers N`), each process's counts are its own,
and a scrape reaches whichever process accepts it; so prometheus_client's multiprocess mode keeps every
process's values in files under DLSERVE_HOME/metrics, and /metrics adds them up. The serve command
empties that folder before the workers start; the gauges of processes that died are dropped at each
scrape (their counters stay: they are totals)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from app.private import private_dir
from app.processes import alive
from app.settings import Settings

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_PID = re.compile(r"_(\d+)\.db$")

log = logging.getLogger("dlserve")


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter(
            "dlserve_http_requests", "HTTP requests by route template and status",
            ["method", "route", "status"], registry=registry,
        )
        self.latency = Histogram(
            "dlserve_http_request_duration_seconds", "HTTP request latency by route template",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=registry,
        )

        # The label children by (method, route template, status): a handful, looked up once rather than
        # by labels() (a lock and a few allocations) on every request.
        self._children: dict[tuple[str, str, int], tuple] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(method, route, str(status)),
                                              self.latency.labels(method, route))
        children[0].inc()
        children[1].observe(seconds)


def start_multiprocess(folder: Path) -> None:
    """Before the worker processes start: an empty private folder for their metric files, named where
    prometheus_client looks for it (it reads PROMETHEUS_MULTIPROC_DIR once, as each process imports it)."""
    private_dir(folder)
    for f in folder.glob("*.db"):
        f.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def multiprocess_folder(settings: Settings) -> Path | None:
    """The folder to add up at a scrape, when this process is one of several writing there; else None."""
    if settings.workers <= 1:
        return None
    if values.ValueClass is values.MutexValue:  # PROMETHEUS_MULTIPROC_DIR was not set when it was imported
        log.warning("DLSERVE_WORKERS=%d, but prometheus_client keeps this process's counts in memory: /metrics "
                    "shows one process's share (`dlserve serve --workers N` sets PROMETHEUS_MULTIPROC_DIR)",
                    settings.workers)
        return None
    # prometheus_client's own variable, not a dlserve setting: the folder it writes to is the one to read
    return Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ["prometheus_multiproc_dir"])


def render(registry: CollectorRegistry, folder: Path | None = None) -> bytes:
    if folder is None:
        return generate_latest(registry)
    for f in folder.glob("gauge_live*.db"):
        m = _PID.search(f.name)
        if m and not alive(int(m.group(1))):
            mark_process_dead(int(m.group(1)), str(folder))
    combined = CollectorRegistry()
    MultiProcessCollector(combined, str(folder))
    return generate_latest(combined)
