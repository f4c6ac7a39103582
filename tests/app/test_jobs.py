"""Jobs as a client sees them before any worker runs: submission and its validation, listing, cancel,
the message on the broker, the 503 when the broker is away, and what happens to lost runs."""

import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db.base import utcnow
from app.db.session import make_engine, make_sessionmaker
from app.db.tables import TrainingRun
from app.jobs import service
from app.jobs.broker import Broker, file_broker_dirs
from app.main import create_app
from tests.conftest import ADMIN_KEY, REDIS_URL, assert_problem


def submit(client, dataset, **body):
    return client.post("/v1/jobs", json={"task": "classification", "dataset_id": dataset["id"], **body})


def queued_messages(settings) -> list[dict]:
    folder = file_broker_dirs(settings)["queue"]
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.msg"))]


def test_submit_answers_202_with_the_job_and_publishes_it(client, dataset, settings):
    r = submit(client, dataset, config={"epochs": 2, "lr": "0.01"}, register_as="digits", alias="production")
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["task"] == "classification" and job["dataset_id"] == dataset["id"]
    assert job["config"]["epochs"] == 2 and job["config"]["lr"] == 0.01 and job["config"]["batch_size"] == 64
    assert job["register_as"] == "digits" and job["alias"] == "production" and job["model_version"] is None

    messages = queued_messages(settings)
    assert len(messages) == 1 and job["id"] in json.dumps(messages[0])
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"


def test_a_default_model_name_is_given(client, dataset):
    job = submit(client, dataset).json()
    assert job["register_as"] == f"classification-{job['id'][:8]}"


@pytest.mark.parametrize("body, needle", [
    ({"config": {"epoch": 2}}, "config.epoch: unknown key"),
    ({"config": {"epochs": "many"}}, "config.epochs"),
    ({"config": {"lr": -1}}, "config.lr: lr must be > 0"),
    ({"config": {"optimizer": "rmsprop"}}, "config.optimizer"),
    ({"dataset_id": "missing"}, "field 'dataset_id': no dataset"),
    ({"register_as": "../x"}, "model name '../x' is not valid"),
    ({"alias": "1st"}, "alias '1st' is not valid"),
    ({"bogus": 1}, "body.bogus"),
])
def test_bad_submissions_are_422_naming_the_field(client, dataset, settings, body, needle):
    assert_problem(submit(client, dataset, **body), 422, needle)
    assert client.get("/v1/jobs").json()["total"] == 0
    assert queued_messages(settings) == []


def test_a_name_held_by_another_task_is_409(client, dataset, tiny_onnx):
    client.post("/v1/models/taken/versions", files={"file": ("m.onnx", tiny_onnx)}, data={"task": "fraud"})
    assert_problem(submit(client, dataset, register_as="taken"), 409, "holds fraud versions")


def test_list_filters_and_pages(client, dataset):
    ids = [submit(client, dataset).json()["id"] for _ in range(3)]
    client.post(f"/v1/jobs/{ids[0]}/cancel")
    page = client.get("/v1/jobs", params={"limit": 2}).json()
    assert page["total"] == 3 and [j["id"] for j in page["items"]] == ids[::-1][:2]
    assert [j["id"] for j in client.get("/v1/jobs", params={"limit": 2, "offset": 2}).json()["items"]] == [ids[0]]
    assert [j["id"] for j in client.get("/v1/jobs", params={"status": "cancelled"}).json()["items"]] == [ids[0]]
    assert client.get("/v1/jobs", params={"status": "queued", "task": "classification"}).json()["total"] == 2
    assert client.get("/v1/jobs", params={"task": "fraud"}).json()["total"] == 0
    assert_problem(client.get("/v1/jobs", params={"status": "paused"}), 422, "'paused' is not one of")
    assert_problem(client.get("/v1/jobs/nope"), 404, "no job")


def test_cancel_a_queued_job_at_once_and_a_finished_one_not_at_all(client, dataset, settings):
    job = submit(client, dataset).json()
    r = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled" and r.json()["finished_at"]
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"  # idempotent

    other = submit(client, dataset).json()
    with make_sessionmaker(make_engine(settings.resolved_database_url))() as s:
        s.get(TrainingRun, other["id"]).status = "succeeded"
        s.commit()
    assert_problem(client.post(f"/v1/jobs/{other['id']}/cancel"), 409, "already succeeded")


def test_metrics_and_events_of_a_finished_job(client, dataset, settings):
    from app.db.tables import RunMetric

    job = submit(client, dataset).json()
    with make_sessionmaker(make_engine(settings.resolved_database_url))() as s:
        s.add_all([RunMetric(run_id=job["id"], key="loss", step=i, epoch=i / 2, value=1.0 / i) for i in (1, 2)])
        s.get(TrainingRun, job["id"]).status = "failed"
        s.get(TrainingRun, job["id"]).error = "boom"
        s.commit()
    history = client.get(f"/v1/jobs/{job['id']}/metrics").json()["items"]
    assert [(m["key"], m["step"], m["value"]) for m in history] == [("loss", 1, 1.0), ("loss", 2, 0.5)]
    assert client.get(f"/v1/jobs/{job['id']}/metrics", params={"key": "acc"}).json()["items"] == []

    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = [block.split("\n") for block in text.strip().split("\n\n")]
    assert [e[0] for e in events] == ["event: metrics", "event: end"]
    end = json.loads(events[-1][1][len("data: "):])
    assert end["status"] == "failed" and end["error"] == "boom"
    assert_problem(client.get("/v1/jobs/nope/events"), 404)


def _client(settings, **overrides):
    for k, v in overrides.items():
        setattr(settings, k, v)
    c = TestClient(create_app(settings), raise_server_exceptions=False)
    c.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
    return c


def test_an_unreachable_broker_is_503_with_retry_after_and_records_nothing(settings, client, dataset):
    with _client(settings, broker_url="redis://127.0.0.1:1/0", publish_retry_after_s=7) as dead:
        r = submit(dead, dataset)
        body = assert_problem(r, 503, "cannot take the job")
        assert r.headers["retry-after"] == "7" and "nothing was recorded" in body["detail"]
        assert dead.get("/v1/jobs").json()["total"] == 0


def test_a_broken_file_broker_is_503_too(client, dataset, settings):
    queue = file_broker_dirs(settings)["queue"]
    queue.rmdir()
    queue.write_text("not a folder any more")
    r = submit(client, dataset)
    assert_problem(r, 503, "cannot take the job")
    assert "retry-after" in r.headers
    assert client.get("/v1/jobs").json()["total"] == 0


@pytest.mark.skipif(not REDIS_URL, reason="DLSERVE_TEST_REDIS_URL is not set")
def test_jobs_are_published_to_redis(settings, client, dataset):
    import redis

    queue = f"training-test-{dataset['id'][:8]}"
    with _client(settings, broker_url=REDIS_URL, queue=queue) as c:
        job = submit(c, dataset).json()
        r = redis.Redis.from_url(REDIS_URL)
        try:
            messages = r.lrange(queue, 0, -1)
            assert len(messages) == 1 and job["id"] in messages[0].decode()
        finally:
            r.delete(queue)


def test_lost_runs_are_requeued_then_given_up(client, dataset, settings):
    ids = [submit(client, dataset).json()["id"] for _ in range(4)]
    sessions = make_sessionmaker(make_engine(settings.resolved_database_url))
    long_ago = utcnow() - timedelta(minutes=5)
    with sessions() as s:
        for run_id, attempts, cancel in zip(ids, (1, 3, 1, 1), (False, False, True, False), strict=True):
            run = s.get(TrainingRun, run_id)
            run.status, run.worker, run.heartbeat_at, run.attempts = "running", "elsewhere:1", long_ago, attempts
            run.cancel_requested = cancel
        s.get(TrainingRun, ids[3]).heartbeat_at = utcnow()  # alive
        s.commit()
    before = len(queued_messages(settings))
    with sessions() as s:
        done = service.reap(s, Broker(settings), timeout_s=60, max_attempts=3)
        s.commit()
    assert done == {ids[0]: "requeued", ids[1]: "failed", ids[2]: "cancelled"}
    jobs = {j["id"]: j for j in client.get("/v1/jobs").json()["items"]}
    assert jobs[ids[0]]["status"] == "queued" and jobs[ids[0]]["worker"] is None
    assert jobs[ids[1]]["status"] == "failed" and "stopped responding" in jobs[ids[1]]["error"]
    assert jobs[ids[2]]["status"] == "cancelled"
    assert jobs[ids[3]]["status"] == "running"
    assert len(queued_messages(settings)) == before + 1  # delivered again


def test_a_requeue_that_cannot_be_published_changes_nothing(client, dataset, settings):
    run_id = submit(client, dataset).json()["id"]
    sessions = make_sessionmaker(make_engine(settings.resolved_database_url))
    with sessions() as s:
        run = s.get(TrainingRun, run_id)
        run.status, run.worker, run.heartbeat_at = "running", "elsewhere:1", utcnow() - timedelta(minutes=5)
        s.commit()
    settings.broker_url = "redis://127.0.0.1:1/0"
    from app.jobs.reaper import reap_once

    assert reap_once(settings, sessions, Broker(settings)) == {}
    with sessions() as s:
        assert s.scalar(select(TrainingRun.status).where(TrainingRun.id == run_id)) == "running"
