"""GET /v1/jobs as the runs table uses it: sorted in the database by any column (best metric and any metric
included), filtered, searched and paged, with each run's dataset name, duration, best metric, tags and note."""

from datetime import timedelta

import pytest

from app.db.base import utcnow
from app.db.session import make_engine, make_sessionmaker
from app.db.tables import Dataset, RunTag, TrainingRun, new_id
from tests.conftest import assert_problem

T0 = utcnow().replace(microsecond=0) - timedelta(days=1)


@pytest.fixture
def sessions(settings):
    engine = make_engine(settings.resolved_database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def seed(sessions, runs: list[dict], datasets=("beta", "alpha")) -> list[str]:
    """Runs straight into the database (no broker, no worker): each dict overrides a plain queued run."""
    with sessions() as s:
        ds = [Dataset(name=name, task="classification", format="npz", sha256=new_id() * 2, size_bytes=1, uri="x",
                      stats={}) for name in datasets]
        s.add_all(ds)
        s.flush()
        ids = []
        for i, spec in enumerate(runs):
            spec = dict(spec)
            tags = spec.pop("tags", [])
            dataset = spec.pop("dataset", 0)
            run = TrainingRun(id=spec.pop("id", new_id()), task="classification", params={}, status="queued",
                              progress={}, latest_metrics={}, register_as=f"model-{i}", attempts=0,
                              cancel_requested=False, created_at=T0 + timedelta(minutes=i),
                              dataset_id=ds[dataset].id if dataset is not None else None)
            for key, value in spec.items():
                setattr(run, key, value)
            s.add(run)
            s.flush()
            s.add_all([RunTag(run_id=run.id, tag=t) for t in tags])
            ids.append(run.id)
        s.commit()
    return ids


def listed(client, **params) -> list[str]:
    r = client.get("/v1/jobs", params=params)
    assert r.status_code == 200, r.text
    return [j["id"] for j in r.json()["items"]]


def started(minutes: float, took: float | None) -> dict:
    at = T0 + timedelta(minutes=minutes)
    return {"status": "succeeded" if took is not None else "running", "started_at": at,
            "finished_at": at + timedelta(seconds=took) if took is not None else None,
            "heartbeat_at": at + timedelta(seconds=5)}


def test_sorts_by_times_and_duration_with_runs_lacking_one_last(client, sessions):
    a, b, c, d = seed(sessions, [started(3, 100), started(1, 30), {}, started(2, None)])
    assert listed(client) == [d, c, b, a]  # newest first by default
    assert listed(client, order="asc") == [a, b, c, d]
    assert listed(client, sort="started_at") == [a, d, b, c]  # c never started: last either way
    assert listed(client, sort="started_at", order="asc") == [b, d, a, c]
    finished = listed(client, sort="finished_at")
    assert finished[:2] == [a, b] and set(finished[2:]) == {c, d}
    # d is running: its duration runs to its last heartbeat (5 s)
    assert listed(client, sort="duration_s") == [a, b, d, c]
    assert listed(client, sort="duration_s", order="asc") == [d, b, a, c]
    items = {j["id"]: j for j in client.get("/v1/jobs").json()["items"]}
    assert (items[a]["duration_s"], items[b]["duration_s"], items[d]["duration_s"], items[c]["duration_s"]) == \
        (100.0, 30.0, 5.0, None)


def test_sorts_by_status_task_dataset_name_and_progress(client, sessions):
    a, b, c = seed(sessions, [
        {"status": "failed", "progress": {"fraction": 0.5}, "dataset": 0},
        {"status": "running", "progress": {"fraction": 0.9}, "dataset": 1},
        {"status": "queued", "progress": {}, "dataset": None},
    ])
    assert listed(client, sort="status", order="asc") == [c, b, a]  # queued, running, ..., failed
    assert listed(client, sort="dataset_name", order="asc") == [b, a, c]  # alpha, beta, then none
    assert listed(client, sort="progress") == [b, a, c]
    assert listed(client, sort="task") == sorted([a, b, c], reverse=True)  # one task: the id breaks the tie
    items = {j["id"]: j for j in client.get("/v1/jobs").json()["items"]}
    assert (items[a]["dataset_name"], items[b]["dataset_name"], items[c]["dataset_name"]) == ("beta", "alpha", None)


def test_best_metric_puts_the_best_runs_first_whichever_way_their_metric_points(client, sessions):
    a, b, c, d, e = seed(sessions, [
        {"latest_metrics": {"val_accuracy": 0.7}},
        {"latest_metrics": {"val_accuracy": 0.9, "val_loss": 0.2}},
        {"latest_metrics": {"val_rmse": 0.8}, "task": "recommendation"},
        {"latest_metrics": {"val_rmse": 1.1}, "task": "recommendation"},
        {"latest_metrics": {"val_accuracy": "n/a", "val_loss": [1, 2]}},  # not numbers: no value, no error
    ])
    assert listed(client, sort="best_metric", task="classification") == [b, a, e]
    assert listed(client, sort="best_metric", task="recommendation") == [c, d]
    assert listed(client, sort="best_metric", task="recommendation", order="asc") == [d, c]
    assert listed(client, sort="metric:val_rmse", order="asc")[:2] == [c, d]  # the raw value
    assert listed(client, sort="metric:val_loss")[0] == b  # e's list is no number
    items = {j["id"]: j for j in client.get("/v1/jobs").json()["items"]}
    assert items[b]["best_metric"] == {"key": "val_accuracy", "goal": "max", "value": 0.9}
    assert items[c]["best_metric"] == {"key": "val_rmse", "goal": "min", "value": 0.8}
    assert items[e]["best_metric"] == {"key": "val_accuracy", "goal": "max", "value": None}
    assert len(listed(client, sort="best_metric")) == 5


def test_filters_search_and_paging_with_the_total(client, sessions):
    ids = seed(sessions, [
        {"tags": ["baseline", "cpu"], "note": "First try, 50% of the data"},
        {"tags": ["cpu"], "register_as": "digits_v2"},
        {"status": "failed", "dataset": 1},
        {"task": "fraud", "tags": ["baseline"]},
    ])
    page = client.get("/v1/jobs", params={"tag": "cpu"}).json()
    assert page["total"] == 2 and {j["id"] for j in page["items"]} == set(ids[:2])
    assert listed(client, tag="baseline", task="fraud") == [ids[3]]
    assert listed(client, status="failed") == [ids[2]]
    dataset_id = client.get(f"/v1/jobs/{ids[2]}").json()["dataset_id"]
    assert listed(client, dataset_id=dataset_id) == [ids[2]]
    assert listed(client, q="FIRST") == [ids[0]]
    assert listed(client, q="50%") == [ids[0]] and listed(client, q="0%") == [ids[0]]  # % is a character
    assert listed(client, q="s_v") == [ids[1]] and listed(client, q="s%v") == []
    assert listed(client, q=ids[3][4:12]) == [ids[3]]
    assert listed(client, tag="gpu") == []
    page = client.get("/v1/jobs", params={"limit": 3, "offset": 2, "order": "asc"}).json()
    assert page["total"] == 4 and [j["id"] for j in page["items"]] == ids[2:]
    first = {j["id"]: j for j in client.get("/v1/jobs").json()["items"]}[ids[0]]
    assert first["tags"] == ["baseline", "cpu"] and first["note"] == "First try, 50% of the data"


def test_ties_break_by_id_so_pages_neither_repeat_nor_skip(client, sessions):
    ids = seed(sessions, [{"created_at": T0} for _ in range(7)])
    pages = [listed(client, limit=3, offset=o) for o in (0, 3, 6)]
    assert sum(pages, []) == sorted(ids, reverse=True)


@pytest.mark.parametrize("params, field", [
    ({"sort": "bogus"}, "query.sort"), ({"sort": "metric:"}, "query.sort"), ({"sort": "metric:a'b"}, "query.sort"),
    ({"order": "up"}, "query.order"), ({"tag": "-x"}, "query.tag"), ({"q": "a" * 201}, "query.q"),
    ({"limit": 501}, "query.limit"), ({"task": "knitting"}, "query.task"),
])
def test_bad_listing_parameters_are_422_naming_them(client, params, field):
    assert assert_problem(client.get("/v1/jobs", params=params), 422)["errors"][0]["field"] == field
