"""Each job's log: kept in the database within its bound (head and tail, the middle marked as dropped),
served as text from an offset on (GET /v1/jobs/{id}/log) and pushed as `log` events while the job runs."""

import json
import logging
import threading

import pytest
from sqlalchemy import text

from app.db.session import make_engine, make_sessionmaker
from app.db.tables import TrainingRun
from app.jobs import logs
from tests.app.test_jobs import submit
from tests.app.test_web_session import make_key
from tests.conftest import assert_problem
from workers.runlog import RunLog


@pytest.fixture
def sessions(settings):
    engine = make_engine(settings.resolved_database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def job(client, dataset):  # noqa: F811
    return submit(client, dataset).json()


def write(sessions, job_id: str, start: int, text: str, max_bytes: int = 1024 * 1024) -> int:
    with sessions() as s:
        end = logs.append(s, job_id, start, text, max_bytes)
        s.commit()
    return end


def test_the_log_is_served_from_an_offset_with_where_to_go_on(client, sessions, job):
    url = f"/v1/jobs/{job['id']}/log"
    r = client.get(url)
    assert r.status_code == 200 and r.text == "" and r.headers["x-log-offset"] == "0"
    assert r.headers["content-type"].startswith("text/plain") and r.headers["x-log-complete"] == "false"
    first = "épreuve one\ntwo\n"
    end = write(sessions, job["id"], 0, first)
    r = client.get(url)
    assert r.text == first and int(r.headers["x-log-offset"]) == end == len(first.encode())
    write(sessions, job["id"], end, "three\n")
    r = client.get(url, params={"offset": r.headers["x-log-offset"]})
    assert r.text == "three\n"
    assert client.get(url, params={"offset": 9}).text == "one\ntwo\nthree\n"  # inside a chunk (é is 2 bytes)
    assert client.get(url, params={"offset": 10_000}).text == ""

    client.post(f"/v1/jobs/{job['id']}/cancel")
    assert client.get(url).headers["x-log-complete"] == "true"
    assert_problem(client.get(url, params={"offset": -1}), 422, "query.offset")
    assert_problem(client.get("/v1/jobs/nope/log"), 404, "no job")
    reader = {"Authorization": f"Bearer {make_key(client.app.state.settings, ['read'])}"}
    assert client.get(url, headers=reader).status_code == 200


def test_a_long_log_keeps_its_head_and_its_tail_and_says_what_it_dropped(sessions, job):
    bound = 16 * 1024
    end, lines = 0, []
    for i in range(2000):  # about 70 KiB, written as a worker would: a chunk at a time
        chunk = f"line {i:04d}: {'x' * 20}\n"
        lines.append(chunk)
        end = write(sessions, job["id"], end, chunk, bound)
    with sessions() as s:
        part = logs.read(s, job["id"])
        stored = sum(size for (size,) in s.execute(text("SELECT size FROM run_logs")))
    whole = "".join(lines)
    head, marker, tail = part.text.partition("[... ")
    dropped = int(tail.split(" bytes dropped ...]\n")[0])
    tail = tail.split(" bytes dropped ...]\n", 1)[1]
    assert whole.startswith(head) and whole.endswith(tail) and head and tail
    assert len(head.encode()) + dropped + len(tail.encode()) == len(whole.encode()) == end == part.next_offset
    assert stored <= bound + logs.CHUNK_BYTES + 100
    assert len(head.encode()) >= bound // 2 and len(tail.encode()) >= bound // 2 - 40


def test_log_events_are_pushed_with_the_jobs_other_events(client, sessions, job):
    end = write(sessions, job["id"], 0, "loading\n")
    end = write(sessions, job["id"], end + 100, "training\n")  # a gap: 100 bytes the worker dropped
    with sessions() as s:
        s.get(TrainingRun, job["id"]).status = "failed"
        s.commit()
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as r:
        text = "".join(r.iter_text())
    events = {block.split("\n")[0][len("event: "):]: json.loads(block.split("\n")[1][len("data: "):])
              for block in text.strip().split("\n\n")}
    assert list(events) == ["log", "end"]
    assert events["log"] == {"offset": 0, "text": "loading\n[... 100 bytes dropped ...]\ntraining\n",
                             "next_offset": end}
    with client.stream("GET", f"/v1/jobs/{job['id']}/events", params={"log_offset": end}) as r:
        assert "event: log" not in "".join(r.iter_text())


def test_the_handler_takes_the_runs_threads_only_and_drops_what_overflows(sessions, job):
    handler = RunLog(job["id"], max_bytes=16 * 1024, start=0)
    logger = logging.getLogger("dlserve.worker.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("from the run's thread")
        other = threading.Thread(target=lambda: logger.info("from another job's thread"))
        other.start()
        other.join()
        beat = threading.Thread(target=lambda: logger.warning("heartbeat failed"), name=f"heartbeat-{job['id'][:8]}")
        beat.start()
        beat.join()
        for _ in range(1000):
            logger.info("x" * 100)  # far over the bound between two writes
        handler.write_now(sessions)
        logger.info("after")
        handler.write_now(sessions)
    finally:
        logger.removeHandler(handler)
    with sessions() as s:
        text = logs.read(s, job["id"]).text
    assert "from the run's thread" in text and "heartbeat failed" in text and "another job" not in text
    assert " INFO dlserve.worker.test: from the run's thread" in text.splitlines()[0]
    assert "bytes dropped ...]\n" in text and text.endswith("dlserve.worker.test: after\n")
