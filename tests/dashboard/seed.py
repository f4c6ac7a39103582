"""Finished runs with their metric curves written straight into a dlserve database (SQLAlchemy Core, in
bulk), for the compare test and the dashboard benchmark: no worker needed, and 10,000 runs take seconds."""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, insert

from app.db.tables import Dataset, RunMetric, TrainingRun

TASKS = ("classification", "detection", "captioning", "translation", "recommendation", "fraud")


def _dataset(conn, name: str, task: str) -> str:
    did = uuid.uuid4().hex
    conn.execute(insert(Dataset.__table__).values(
        id=did, name=name, task=task, format="imagefolder" if task == "classification" else "csv",
        sha256=uuid.uuid4().hex + uuid.uuid4().hex, size_bytes=1234, uri=f"datasets/{did}", stats={},
        created_at=datetime.now(UTC)))
    return did


def curve(steps: int, seed: int, start: float = 2.3, floor: float = 0.05) -> list[float]:
    """A loss-like curve: decays from `start` towards `floor`, with noise."""
    rng = random.Random(seed)
    rate = 3.0 / max(steps, 1) * (0.6 + 0.8 * rng.random())
    return [floor + (start - floor) * math.exp(-rate * s) * (1 + 0.08 * rng.uniform(-1, 1)) for s in range(steps)]


def seed_runs(url: str, specs: list[dict[str, Any]], dataset_name: str = "seeded data") -> tuple[list[str], dict]:
    """Writes one succeeded run per spec: {"task", "config", "steps", "epochs", "metrics" (final),
    "seed", "keys" (curves besides loss, default none)}; returns the run ids in order and {task: the
    dataset made for its runs}."""
    engine = create_engine(url)
    ids = []
    now = datetime.now(UTC)
    with engine.begin() as conn:
        datasets: dict[str, str] = {}
        runs, rows = [], []
        for n, spec in enumerate(specs):
            task = spec.get("task", "classification")
            if task not in datasets:
                datasets[task] = _dataset(conn, f"{dataset_name} ({task})", task)
            rid = uuid.uuid4().hex
            ids.append(rid)
            steps, epochs = spec.get("steps", 100), spec.get("epochs", 5)
            started = now - timedelta(seconds=steps * 0.05 + 60 + n)
            runs.append(dict(
                id=rid, task=task, dataset_id=datasets[task], params=spec.get("config", {}),
                status=spec.get("status", "succeeded"),
                progress={"epoch": epochs, "epochs": epochs, "step": steps, "total": steps, "fraction": 1.0},
                latest_metrics=spec.get("metrics", {}), attempts=1, cancel_requested=False,
                created_at=started - timedelta(seconds=1), started_at=started,
                finished_at=started + timedelta(seconds=steps * 0.05)))
            for key in ("loss", *spec.get("keys", ())):
                values = curve(steps, spec.get("seed", n) * 7 + len(key))
                per_epoch = max(1, steps // epochs)
                for s, v in enumerate(values):
                    rows.append(dict(run_id=rid, key=key, step=s + 1, epoch=round((s + 1) / per_epoch, 4), value=v,
                                     created_at=started + timedelta(seconds=s * 0.05)))
        conn.execute(insert(TrainingRun.__table__), runs)
        for i in range(0, len(rows), 20_000):
            conn.execute(insert(RunMetric.__table__), rows[i:i + 20_000])
    engine.dispose()
    return ids, datasets
