"""A worker captures its job's log while it runs (its lines, the family's, tracebacks) and leaves it whole in
the database by the time the job is seen to end."""

import logging

from app.db.session import make_engine, make_sessionmaker
from app.db.tables import Dataset
from tests.workers import synthetic
from workers.runner import run_training


def submit(client, **body) -> dict:
    r = client.post("/v1/datasets", files={"file": ("c.npz", synthetic.npz_bytes(n=64, size=8))},
                    data={"task": "classification"})
    r = client.post("/v1/jobs", json={"task": "classification", "dataset_id": r.json()["id"], "register_as": "c",
                                      "config": {"epochs": 2, "batch_size": 16, "width": 4}, **body})
    assert r.status_code == 202, r.text
    return r.json()


def test_a_runs_log_tells_its_story_and_is_whole_when_it_ends(client, settings, one_thread):
    job = submit(client, alias="production")
    levels = {n: logging.getLogger(n).level for n in ("dlserve", "models")}
    assert run_training(job["id"], settings) == "succeeded"
    assert {n: logging.getLogger(n).level for n in levels} == levels  # the levels raised for the run are put back
    r = client.get(f"/v1/jobs/{job['id']}/log")
    assert r.headers["x-log-complete"] == "true"
    text = r.text
    for line in (f"job {job['id']}: attempt 1 in", "training classification on cpu", "epoch 1 of 2 done at step",
                 "epoch 2 of 2 done", "evaluating on the validation split", "validation: accuracy",
                 "exporting to ONNX", "registering c version 1 as production"):
        assert line in text, (line, text)
    assert text.splitlines()[0].split(" ")[2] == "INFO" and " dlserve.worker: " in text
    assert int(r.headers["x-log-offset"]) == len(text.encode())


def test_a_failed_runs_log_holds_the_traceback(client, settings, one_thread):
    job = submit(client)
    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as s:  # the dataset's files vanish under the job
        dataset = s.get(Dataset, job["dataset_id"])
        dataset.uri = "datasets/" + "0" * 64
        s.commit()
    engine.dispose()
    assert run_training(job["id"], settings) == "failed"
    text = client.get(f"/v1/jobs/{job['id']}/log").text
    assert f"job {job['id']} failed" in text and "Traceback (most recent call last)" in text
    second = client.get(f"/v1/jobs/{job['id']}")
    assert second.json()["status"] == "failed"
