"""Every object belongs to a database row or a running job. The sweep removes the others, once they are older
than a grace period (an upload whose row is not committed yet is young), and aborts multipart uploads left
half done by a killed process. It runs in the API (every DLSERVE_STORE_SWEEP_INTERVAL_S, with an object store)
and as `dlserve store sweep`.

    datasets/<sha256>/...          kept while a dataset row has uri datasets/<sha256>
    models/<name>/<version>/...    kept while a model version row has that artifact_uri
    runs/<id>/...                  kept while the run is queued or running, or succeeded (its weights and
                                   last checkpoint are downloads); a failed or cancelled run's are leftovers
    .staging/...                   always litter
Other prefixes are not dlserve's and are left alone.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.tables import Dataset, ModelVersion, TrainingRun
from app.store.base import ObjectStore

log = logging.getLogger("dlserve.store")
KEEP_RUNS = ("queued", "running", "succeeded")


@dataclass
class SweepReport:
    removed: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    kept: int = 0


def owner(key: str) -> tuple[str, str] | None:
    """(kind, the key its row holds) for a key under one of dlserve's prefixes; None for others."""
    parts = key.split("/")
    if parts[0] == "datasets" and len(parts) >= 3:
        return "dataset", "/".join(parts[:2])
    if parts[0] == "models" and len(parts) >= 4:
        return "version", "/".join(parts[:3])
    if parts[0] == "runs" and len(parts) >= 3:
        return "run", parts[1]
    if parts[0] == ".staging":
        return "staging", key
    return None


def sweep(objects: ObjectStore, sessions: sessionmaker[Session], grace_s: float,
          now: datetime | None = None) -> SweepReport:
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=grace_s)
    report = SweepReport()
    # listed before the rows are read: an object written after the listing is not judged at all, and one
    # listed before its row commits is young (the grace period) - so a row committed meanwhile is never missed
    candidates = [o for o in objects.list() if o.modified <= cutoff]
    pending = [u for u in objects.pending_uploads() if u.initiated <= cutoff]
    with sessions() as session:
        datasets = set(session.scalars(select(Dataset.uri)))
        versions = set(session.scalars(select(ModelVersion.artifact_uri)))
        runs = {run_id: status for run_id, status in session.execute(select(TrainingRun.id, TrainingRun.status))}
    stray = []
    for o in candidates:
        who = owner(o.key)
        if who is None:
            continue
        kind, ref = who
        if (kind == "dataset" and ref in datasets) or (kind == "version" and ref in versions) or (
                kind == "run" and runs.get(ref) in KEEP_RUNS):
            report.kept += 1
            continue
        stray.append(o.key)
    objects.delete(stray)
    report.removed = stray
    for u in pending:
        objects.abort_upload(u)
        report.aborted.append(u.key)
    if stray or pending:
        log.info("store sweep: removed %d stray object(s), aborted %d stale multipart upload(s)",
                 len(stray), len(pending))
    return report


def sweeper_loop(settings, sessions: sessionmaker[Session], store) -> asyncio.Task | None:
    """In the API, with an object store: a sweep every DLSERVE_STORE_SWEEP_INTERVAL_S (several replicas may
    sweep at once; deleting what is already gone is no error)."""
    if store.remote is None or settings.store_sweep_interval_s <= 0:
        return None

    async def loop() -> None:
        while True:
            await asyncio.sleep(settings.store_sweep_interval_s)
            try:
                await asyncio.to_thread(sweep, store.remote, sessions, settings.store_sweep_grace_s)
            except Exception:
                log.exception("the store sweep failed; trying again later")

    return asyncio.get_running_loop().create_task(loop(), name="dlserve-store-sweep")
