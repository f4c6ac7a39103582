"""Dynamic batching as callers see it: their own rows back, 429 at once when full, 504 unrun at the deadline."""

import asyncio
import threading
import time

import httpx
import numpy as np
import pytest

from app.inference.batcher import Batcher
from tests import onnx_models
from tests.conftest import ADMIN_KEY, upload
from tests.live_server import live_server

H = {"Authorization": f"Bearer {ADMIN_KEY}"}


def infer_body(x: np.ndarray, timeout_us: int | None = None) -> dict:
    body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]}
    if timeout_us:
        body["parameters"] = {"timeout": timeout_us}
    return body


@pytest.fixture
def doubler(client):
    upload(client, "dbl", onnx_models.doubler(), task="fraud")
    client.put("/v1/models/dbl/aliases/production", json={"version": 1})


def metric(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name))
    return float(line.rsplit(" ", 1)[1])


def infer_at_once(base: str, payloads: list[np.ndarray]) -> tuple[list[httpx.Response], str]:
    """One V2 request to dbl per payload, all sent together from threads; -> (answers in order, /metrics)."""
    answers: list = [None] * len(payloads)

    def call(i):
        answers[i] = httpx.post(f"{base}/v2/models/dbl/infer", json=infer_body(payloads[i]), headers=H, timeout=30)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers, httpx.get(f"{base}/metrics", headers=H).text


def test_concurrent_callers_are_batched_and_get_their_own_rows(settings, doubler):
    settings.max_queue_delay_ms = 25
    rng = np.random.default_rng(0)
    payloads = [rng.standard_normal((int(rng.integers(1, 4)), 4)).astype(np.float32) for _ in range(24)]
    with live_server(settings) as url:
        answers, text = infer_at_once(f"http://{url}", payloads)
    for x, r in zip(payloads, answers, strict=True):
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        assert out["shape"] == list(x.shape)
        np.testing.assert_allclose(np.array(out["data"]).reshape(x.shape), 2 * x, rtol=1e-6)
    batches = metric(text, 'dlserve_inference_batch_size_count{model="dbl",version="1"}')
    rows = metric(text, 'dlserve_inference_batch_size_sum{model="dbl",version="1"}')
    assert rows == sum(len(x) for x in payloads)
    assert batches < len(payloads)  # some requests shared a batch


def busy(base: str, rows: int) -> None:
    """One request of `rows` rows: a batch that size just ran, which is the batcher's evidence that
    company is coming, so the next lone requests wait (up to the delay) to fill a batch that size."""
    r = httpx.post(f"{base}/v2/models/dbl/infer", json=infer_body(np.zeros((rows, 4), np.float32)), headers=H)
    assert r.status_code == 200, r.text


def test_a_versions_own_batching_options_override_the_settings(client, settings):
    """metadata.batching caps this version's batches (settings allow 32) and sets its delay."""
    upload(client, "dbl", onnx_models.doubler(), task="fraud",
           metadata='{"batching": {"max_batch_size": 2, "max_queue_delay_ms": 1000}}')
    client.put("/v1/models/dbl/aliases/production", json={"version": 1})
    xs = [np.full((1, 4), i, np.float32) for i in range(6)]
    with live_server(settings) as url:
        busy(f"http://{url}", 2)
        answers, text = infer_at_once(f"http://{url}", xs)
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    for x, r in zip(xs, answers, strict=True):
        np.testing.assert_array_equal(np.array(r.json()["outputs"][0]["data"]).reshape(1, 4), 2 * x)
    assert metric(text, 'dlserve_inference_batch_size_sum{model="dbl",version="1"}') == 2 + 6
    # at most 2 rows a batch; the 1 s delay lets each batch fill to 2 on a loaded machine too (1-row batches: 4 or more)
    assert metric(text, 'dlserve_inference_batch_size_count{model="dbl",version="1"}') == 1 + 3
    assert 'dlserve_inference_batch_size_bucket{le="2.0",model="dbl",version="1"} 4.0' in text


def test_full_queue_answers_429_at_once(settings, doubler):
    settings.max_queue_size = 2
    settings.max_queue_delay_ms = 1500  # the first requests wait in the queue for a fuller batch
    x = np.ones((1, 4), np.float32)
    with live_server(settings) as url:
        base = f"http://{url}"
        busy(base, 8)
        results = []
        waiting = [threading.Thread(target=lambda: results.append(
            httpx.post(f"{base}/v2/models/dbl/infer", json=infer_body(x), headers=H, timeout=30)))
            for _ in range(2)]
        for t in waiting:
            t.start()
        time.sleep(0.3)
        start = time.monotonic()
        r = httpx.post(f"{base}/v2/models/dbl/infer", json=infer_body(x), headers=H)
        assert time.monotonic() - start < 0.5
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert r.headers["Content-Type"] == "application/problem+json" and "limit" in r.json()["detail"]
        for t in waiting:
            t.join()
    assert [q.status_code for q in results] == [200, 200]  # the queued ones were served, not dropped


def test_a_request_still_queued_at_its_deadline_gets_504_and_never_runs(settings, doubler):
    settings.max_queue_delay_ms = 1500
    with live_server(settings) as url:
        base = f"http://{url}"
        busy(base, 2)
        start = time.monotonic()
        r = httpx.post(f"{base}/v2/models/dbl/infer", json=infer_body(np.ones((1, 4), np.float32), 200_000),
                       headers=H, timeout=30)
        elapsed = time.monotonic() - start
        assert r.status_code == 504, r.text
        assert "200 ms" in r.json()["detail"]
        assert 0.15 < elapsed < 1.2
        time.sleep(1.6)  # past the batching delay: had it stayed queued, it would have run by now
        text = httpx.get(f"{base}/metrics", headers=H).text
    assert metric(text, 'dlserve_inference_batch_size_count{model="dbl",version="1"}') == 1  # busy()'s only
    assert 'dlserve_inference_requests_total{api="v2",model="dbl",status="504",version="1"} 1.0' in text


def test_one_bad_request_does_not_fail_the_batch_it_was_stacked_into():
    def run(feeds):
        if (feeds["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": feeds["x"] * 2}

    async def scenario():
        b = Batcher("t", run, max_batch=8, max_delay_s=0.05, max_queue=8)
        until = time.monotonic() + 5
        xs = [np.full((1, 2), v, np.float32) for v in (1, -1, 3)]
        results = await asyncio.gather(*(b.submit({"x": x}, 1, until) for x in xs), return_exceptions=True)
        await b.close()
        return results

    good1, bad, good3 = asyncio.run(scenario())
    np.testing.assert_array_equal(good1["y"], [[2, 2]])
    np.testing.assert_array_equal(good3["y"], [[6, 6]])
    assert isinstance(bad, ValueError)


def test_variable_length_inputs_are_padded_into_one_batch():
    """Sentences of different lengths share a batch when the family names the input and pad value."""
    seen_shapes = []

    def run(feeds):
        seen_shapes.append(feeds["tokens"].shape)
        return {"lengths": (feeds["tokens"] != 0).sum(axis=1), "echo": feeds["tokens"]}

    async def scenario():
        b = Batcher("t", run, max_batch=8, max_delay_s=0.05, max_queue=8, pad={"tokens": (1, 0)})
        until = time.monotonic() + 5
        sentences = [np.array([[5, 6, 7]], np.int64), np.array([[8]], np.int64), np.array([[1, 2, 3, 4, 9]], np.int64)]
        results = await asyncio.gather(*(b.submit({"tokens": s}, 1, until) for s in sentences))
        await b.close()
        return results

    short, shortest, longest = asyncio.run(scenario())
    assert seen_shapes == [(3, 5)]  # one run, padded to the longest
    assert [int(r["lengths"][0]) for r in (short, shortest, longest)] == [3, 1, 5]
    np.testing.assert_array_equal(short["echo"], [[5, 6, 7, 0, 0]])


def test_callers_returning_within_the_delay_after_a_batch_share_the_next_one():
    """Two waves of callers: the second queues while the first one's batch runs. Counting the delay
    only from the oldest arrival would run the second wave alone the moment the runner frees up, and
    the waves would alternate in half-size batches for ever; counting it from the end of the last
    batch too lets the callers just answered join, and batches fill up."""
    sizes = []

    def run(feeds):
        sizes.append(len(feeds["x"]))
        time.sleep(0.05)
        return {"y": feeds["x"]}

    async def caller(b, start, k):
        await asyncio.sleep(start)
        for _ in range(3):
            await b.submit({"x": np.zeros((1, 1), np.float32)}, 1, time.monotonic() + 5)
            await asyncio.sleep(0.001 * k)

    async def scenario():
        b = Batcher("t", run, max_batch=8, max_delay_s=0.03, max_queue=16)
        await asyncio.gather(*(caller(b, 0.0, k) for k in range(4)), *(caller(b, 0.04, k) for k in range(4)))
        await b.close()

    asyncio.run(scenario())
    assert sizes[0] == 4  # the first wave alone: the second had not arrived
    assert sizes[1:3] == [8, 8]


def test_a_lone_caller_is_answered_at_once_not_after_the_batching_delay(settings, doubler):
    """Nobody else is calling: waiting 2 s for company that is not coming would show in every answer."""
    settings.max_queue_delay_ms = 2000
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    with live_server(settings) as url, httpx.Client(base_url=f"http://{url}", headers=H) as c:
        for _ in range(3):
            start = time.monotonic()
            r = c.post("/v2/models/dbl/infer", json=infer_body(x))
            assert r.status_code == 200, r.text
            assert time.monotonic() - start < 1.0  # the 2 s delay was not waited
            assert r.json()["outputs"][0]["data"] == [0.0, 2.0, 4.0, 6.0]
        text = c.get("/metrics").text
    assert metric(text, 'dlserve_inference_batch_size_count{model="dbl",version="1"}') == 3


def test_after_a_crowd_callers_arriving_one_by_one_still_share_a_batch(monkeypatch):
    """The batcher waits only with evidence that company is coming: a batch of four callers ran just now,
    so four callers arriving 30 ms apart are gathered into one batch (well within the 2 s delay, not after
    it); once the batcher has been quiet for a while, a lone caller runs at once again."""
    import app.inference.batcher as batcher_module

    monkeypatch.setattr(batcher_module, "RECENT_S", 0.5)
    sizes = []

    def run(feeds):
        sizes.append(len(feeds["x"]))
        return {"y": feeds["x"]}

    async def one_by_one(b, n):
        calls = []
        for _ in range(n):
            calls.append(asyncio.create_task(b.submit({"x": np.zeros((1, 1), np.float32)}, 1, time.monotonic() + 10)))
            await asyncio.sleep(0.03)
        await asyncio.gather(*calls)

    async def scenario():
        b = Batcher("t", run, max_batch=8, max_delay_s=2.0, max_queue=16)
        x = {"x": np.zeros((1, 1), np.float32)}
        start = time.monotonic()
        await b.submit(x, 1, start + 10)  # the very first caller: no evidence of anyone else
        first = time.monotonic() - start
        await asyncio.gather(*(b.submit(x, 1, time.monotonic() + 10) for _ in range(4)))  # a crowd, together
        start = time.monotonic()
        await one_by_one(b, 4)
        gathered = time.monotonic() - start
        await asyncio.sleep(0.6)  # quiet for longer than RECENT_S
        start = time.monotonic()
        await b.submit(x, 1, start + 10)
        lone = time.monotonic() - start
        await b.close()
        return first, gathered, lone

    first, gathered, lone = asyncio.run(scenario())
    assert sizes == [1, 4, 4, 1]
    assert first < 1.0 and lone < 1.0  # neither waited the 2 s delay
    assert gathered < 1.5  # the batch ran when the fourth caller came, not when the delay ran out


def test_a_version_that_costs_microseconds_runs_on_the_event_loop_a_slow_one_never():
    """Handing a batch to the batch thread and back costs more than a tiny model: once the version's last
    batches all ran within inline_s, the next runs on the event loop's own thread; one slow batch sends the
    following ones back to the batch thread, and a version that is slow from the start never leaves it."""
    threads, delay = [], {"s": 0.0}

    def run(feeds):
        threads.append(threading.current_thread())
        time.sleep(delay["s"])
        return {"y": feeds["x"]}

    async def calls(b, n):
        for _ in range(n):
            await b.submit({"x": np.zeros((1, 1), np.float32)}, 1, time.monotonic() + 10)

    async def scenario():
        loop_thread = threading.current_thread()
        cheap = Batcher("cheap", run, max_batch=8, max_delay_s=0.0, max_queue=8, inline_s=0.05)
        await calls(cheap, 12)
        seen = [t is loop_thread for t in threads]
        delay["s"] = 0.08  # the model turns slow: this batch ran inline, and was timed
        await calls(cheap, 2)
        after_slow = [t is loop_thread for t in threads[12:]]
        await cheap.close()
        threads.clear()
        never = Batcher("never", run, max_batch=8, max_delay_s=0.0, max_queue=8, inline_s=0.0)
        delay["s"] = 0.0
        await calls(never, 12)
        await never.close()
        return seen, after_slow, [t is loop_thread for t in threads]

    seen, after_slow, never = asyncio.run(scenario())
    assert seen == [False] * 8 + [True] * 4  # eight timed runs on the batch thread, then on the loop
    assert after_slow == [True, False]
    assert never == [False] * 12


def test_for_a_slow_model_the_expected_company_is_waited_for_a_share_of_a_batchs_time():
    """A batch takes 100 ms. Four callers come back 0, 8, 16 and 24 ms after it: with the 2 ms delay alone the
    first runs by itself and the others wait for all of its 100 ms before theirs; allowed 0.4 of the last
    batch's time, the four run together."""
    def scenario(fraction: float) -> list[int]:
        sizes = []

        def run(feeds):
            sizes.append(len(feeds["x"]))
            time.sleep(0.1)
            return {"y": feeds["x"]}

        async def caller(b, delay):
            await asyncio.sleep(delay)
            await b.submit({"x": np.zeros((1, 1), np.float32)}, 1, time.monotonic() + 10)

        async def go():
            b = Batcher("t", run, max_batch=8, max_delay_s=0.002, max_queue=16, wait_fraction=fraction)
            await asyncio.gather(*(caller(b, 0) for _ in range(4)))  # evidence: four in flight
            await asyncio.gather(*(caller(b, 0.008 * k) for k in range(4)))
            await b.close()

        asyncio.run(go())
        return sizes

    assert scenario(0.0)[1:] == [1, 3]
    assert scenario(0.4)[1:] == [4]
