"""The runs table with 10,000 runs: seeds them (six families, every status, metrics, tags, notes) and times
GET /v1/jobs for each sort and filter the dashboard offers, in process (the route, its SQL and the JSON);
then ten of them get 10,000 steps of curves each, and GET /v1/jobs/compare and /metrics?max_points are timed.

    python benchmarks/runs_listing.py                       # a fresh SQLite file
    python benchmarks/runs_listing.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

`seed(url, n)` is what other benchmarks (the dashboard's first paint) call to fill a database the same way.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert

ADMIN_KEY = "bench-admin-key-0123456789"
METRICS = {"classification": ("val_accuracy", "val_loss"), "detection": ("val_map", "val_map_50"),
           "captioning": ("val_bleu_4", "val_cider"), "translation": ("val_bleu", "val_loss"),
           "recommendation": ("val_rmse", "val_ndcg_at_10"), "fraud": ("val_pr_auc", "val_roc_auc")}
STATUSES = ("succeeded",) * 6 + ("failed", "cancelled", "running", "queued")
TAGS = ("baseline", "cpu", "gpu", "sweep", "ablation", "prod-candidate")


def seed(url: str, n: int = 10_000, seed_value: int = 0) -> None:
    """`n` runs (and a dataset per family) straight into a migrated database."""
    from app.db.base import utcnow
    from app.db.tables import Dataset, RunTag, TrainingRun, new_id

    rng = random.Random(seed_value)
    start = utcnow() - timedelta(days=90)
    engine = create_engine(url)
    with engine.begin() as conn:
        datasets = {task: new_id() for task in METRICS}
        conn.execute(insert(Dataset), [{"id": i, "name": f"{task}-data", "task": task, "format": "x",
                                        "sha256": new_id() * 2, "size_bytes": 1, "uri": "x", "stats": {},
                                        "created_at": start} for task, i in datasets.items()])
        runs, tags = [], []
        for i in range(n):
            task = rng.choice(list(METRICS))
            status = rng.choice(STATUSES)
            created = start + timedelta(minutes=12 * i + rng.random())
            began = created + timedelta(seconds=rng.uniform(1, 60)) if status != "queued" else None
            ended = began + timedelta(seconds=rng.uniform(10, 3600)) if status in ("succeeded", "failed",
                                                                                  "cancelled") else None
            steps = rng.randint(100, 10_000)
            done = steps if status == "succeeded" else rng.randint(0, steps)
            metrics = {k: rng.random() for k in METRICS[task]} if status != "queued" else {}
            metrics.update({"train_loss": rng.random(), "train_seconds": rng.uniform(10, 3600)} if metrics else {})
            run_id = new_id()
            runs.append({"id": run_id, "task": task, "dataset_id": datasets[task], "params": {"epochs": 10, "lr": 0.01},
                         "status": status, "progress": {"step": done, "total": steps, "fraction": done / steps},
                         "latest_metrics": metrics, "register_as": f"{task}-{i}", "alias": None, "attempts": 1,
                         "cancel_requested": False, "created_at": created, "started_at": began, "finished_at": ended,
                         "heartbeat_at": ended or began, "note": f"run {i}: {rng.choice(['lr sweep', 'more data'])}"})
            tags += [{"run_id": run_id, "tag": t} for t in rng.sample(TAGS, rng.randint(0, 2))]
        for i in range(0, n, 1000):
            conn.execute(insert(TrainingRun), runs[i:i + 1000])
        conn.execute(insert(RunTag), tags)
    engine.dispose()


def seed_curves(url: str, run_ids: list[str], steps: int = 10_000) -> None:
    """loss and lr at every step, val_loss every 100 steps, for each run."""
    import math

    from app.db.tables import RunMetric

    engine = create_engine(url)
    for n, run_id in enumerate(run_ids):
        rows = [{"run_id": run_id, "key": key, "step": i, "epoch": i / 1000, "value": value}
                for i in range(1, steps + 1)
                for key, value in (("loss", (n + 1) / math.sqrt(i) + 0.01 * math.sin(i)),
                                   ("lr", 0.1 * (1 - i / steps)))]
        rows += [{"run_id": run_id, "key": "val_loss", "step": i, "epoch": i / 1000, "value": 2 / math.sqrt(i)}
                 for i in range(100, steps + 1, 100)]
        with engine.begin() as conn:
            conn.execute(insert(RunMetric), rows)
    engine.dispose()


def _time(client, path: str, params: dict, repeat: int) -> tuple[list[float], dict]:
    times, body = [], {}
    for _ in range(repeat):
        t = time.perf_counter()
        r = client.get(path, params=params)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text
        body = r.json()
    return sorted(times), body


def _row(label: str, extra: object, times: list[float]) -> str:
    return (f"| `{label}` | {extra} | {times[0]:.1f} | {statistics.median(times):.1f} "
            f"| {times[int(0.95 * len(times)) - 1]:.1f} |")


QUERIES = [
    {}, {"order": "asc"}, {"sort": "started_at"}, {"sort": "finished_at"}, {"sort": "duration_s"},
    {"sort": "status"}, {"sort": "task"}, {"sort": "dataset_name"}, {"sort": "progress"},
    {"sort": "best_metric"}, {"sort": "best_metric", "task": "classification"}, {"sort": "metric:train_loss"},
    {"status": "running"}, {"tag": "sweep"}, {"q": "lr sweep"}, {"offset": 9950},
    {"sort": "best_metric", "offset": 5000},
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    from fastapi.testclient import TestClient

    from app.db import migrate
    from app.main import create_app
    from app.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="dlserve-bench-runs-"))
    url = args.database_url or f"sqlite:///{home / 'dlserve.db'}"
    migrate.upgrade(url)
    began = time.perf_counter()
    seed(url, args.runs)
    print(f"seeded {args.runs} runs in {time.perf_counter() - began:.1f} s ({url.split(':')[0]})")
    settings = Settings(home=home, database_url=url, admin_key=ADMIN_KEY, reaper_interval_s=0, _env_file=None)
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        print("| query (limit 50) | total | min ms | median ms | p95 ms |\n|---|---|---|---|---|")
        for params in QUERIES:
            times, body = _time(client, "/v1/jobs", params, args.repeat)
            label = "&".join(f"{k}={v}" for k, v in params.items()) or "(default: created_at desc)"
            print(_row(label, body["total"], times))
        ids = [j["id"] for j in client.get("/v1/jobs", params={"status": "succeeded", "limit": 10}).json()["items"]]
        began = time.perf_counter()
        seed_curves(url, ids)
        print(f"\nseeded 10 runs x 10,000 steps (loss, lr; val_loss every 100) in {time.perf_counter() - began:.1f} s")
        print("| query | points | min ms | median ms | p95 ms |\n|---|---|---|---|---|")
        for max_points in (500, 2000):
            times, body = _time(client, "/v1/jobs/compare", {"ids": ",".join(ids), "max_points": max_points},
                                max(3, args.repeat // 4))
            print(_row(f"compare 10 runs, max_points={max_points}", sum(len(x["step"]) for x in body["series"]), times))
        for params in ({"max_points": 1000}, {}):
            times, body = _time(client, f"/v1/jobs/{ids[0]}/metrics", params, max(3, args.repeat // 4))
            print(_row(f"metrics of one run {params or '(every point)'}", len(body["items"]), times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
