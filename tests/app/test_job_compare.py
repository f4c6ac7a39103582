"""Metric series thinned in the database (GET /v1/jobs/{id}/metrics?max_points=) and runs compared side by
side (GET /v1/jobs/compare): shapes kept, spikes kept, configs that differ named, bounds declared."""

import math

import pytest
from sqlalchemy import insert

from app.db.session import make_engine, make_sessionmaker
from app.db.tables import RunMetric, TrainingRun
from tests.app.test_jobs import submit
from tests.conftest import assert_problem

SPIKE = 7777


def record(settings, job_id: str, key: str, steps: int, value=lambda s: 1 / math.sqrt(s), **run) -> None:
    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as s:
        s.execute(insert(RunMetric), [{"run_id": job_id, "key": key, "step": i, "epoch": i / 1000, "value": value(i)}
                                      for i in range(1, steps + 1)])
        row = s.get(TrainingRun, job_id)
        for k, v in run.items():
            setattr(row, k, v)
        s.commit()
    engine.dispose()


def loss(step: int) -> float:
    return 50.0 if step == SPIKE else 1 / math.sqrt(step) + 0.01 * math.sin(step)


@pytest.fixture
def long_run(client, dataset, settings):  # noqa: F811
    job = submit(client, dataset).json()
    record(settings, job["id"], "loss", 10_000, loss)
    record(settings, job["id"], "val_accuracy", 100, lambda s: s / 100)
    return job


def test_a_long_series_is_thinned_to_its_shape_with_its_spike_and_ends(client, long_run):
    url = f"/v1/jobs/{long_run['id']}/metrics"
    everything = client.get(url).json()["items"]
    assert len(everything) == 10_100
    items = client.get(url, params={"max_points": 200}).json()["items"]
    by_key = {k: [p for p in items if p["key"] == k] for k in ("loss", "val_accuracy")}
    points = by_key["loss"]
    assert 150 <= len(points) <= 200
    steps = [p["step"] for p in points]
    assert steps == sorted(steps) and steps[0] == 1 and steps[-1] == 10_000
    assert {"step": SPIKE, "value": 50.0} in [{"step": p["step"], "value": p["value"]} for p in points]
    assert min(p["value"] for p in points) == min(loss(s) for s in range(1, 10_001))
    assert points[0]["epoch"] == 0.001 and points[0]["created_at"]
    assert len(by_key["val_accuracy"]) == 100  # fewer points than asked: whole
    only = client.get(url, params={"max_points": 10, "key": "loss"}).json()["items"]
    assert {p["key"] for p in only} == {"loss"} and len(only) <= 10 and only[-1]["step"] == 10_000


@pytest.mark.parametrize("params, field", [
    ({"max_points": 9}, "query.max_points"), ({"max_points": 10_001}, "query.max_points"),
    ({"key": "a b"}, "query.key"),
])
def test_bad_metric_queries_are_422(client, long_run, params, field):
    body = assert_problem(client.get(f"/v1/jobs/{long_run['id']}/metrics", params=params), 422)
    assert body["errors"][0]["field"] == field


def test_runs_compared_side_by_side(client, dataset, settings):  # noqa: F811
    ids = [submit(client, dataset, config={"epochs": 3, "lr": lr}).json()["id"] for lr in (0.1, 0.01, 0.1)]
    for i, job_id in enumerate(ids):
        record(settings, job_id, "loss", 3000, lambda s, i=i: (i + 1) / s,
               latest_metrics={"loss": 0.1 * (i + 1), "val_accuracy": 0.8 + 0.05 * i, **({"val_f1": 0.5} if i else {})})
    order = [ids[2], ids[0], ids[1]]
    r = client.get("/v1/jobs/compare", params={"ids": ",".join(order), "max_points": 100})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [run["id"] for run in body["runs"]] == order
    assert body["differing_config_keys"] == ["lr"] and "epochs" in body["config_keys"]
    assert body["metric_keys"] == ["loss", "val_accuracy", "val_f1"]
    assert body["runs"][0]["metrics"]["val_accuracy"] == pytest.approx(0.9)
    assert [(s["job_id"], s["key"]) for s in body["series"]] == [(i, "loss") for i in order]
    for s in body["series"]:
        assert len(s["step"]) == len(s["value"]) == len(s["epoch"]) <= 100 and s["step"][-1] == 3000
    assert body["series"][1]["value"][0] == 1.0  # ids[0]: 1 / step at step 1


@pytest.mark.parametrize("ids, status, needle", [
    ("onlyone", 422, "query.ids"), (",".join(f"j{i}" for i in range(11)), 422, "query.ids"),
    ("a,a", 422, "names a job twice"), ("a,b", 404, "no job with id 'a'"), ("a,../b", 422, "query.ids"),
])
def test_bad_comparisons(client, dataset, ids, status, needle):  # noqa: F811
    assert_problem(client.get("/v1/jobs/compare", params={"ids": ids}), status, needle)


def test_compare_is_no_job_id(client):
    assert_problem(client.get("/v1/jobs/compare"), 422, "query.ids")
    assert client.get("/openapi.json").json()["paths"]["/v1/jobs/compare"]["get"]["parameters"][1]["schema"][
        "maximum"] == 5_000
