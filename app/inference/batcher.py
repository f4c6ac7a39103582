"""Dynamic batching for one model version.

Requests queue up; one runner takes whatever is queued (up to max_batch rows) and runs it in its own
thread so the event loop stays free. It waits for a fuller batch (counted from the later of the oldest
arrival and the end of the last batch) only when there is evidence that company is coming: around a
batch of the last second there were more rows in flight (the rows it ran plus those that queued while
it ran) than are queued now. So a lone caller runs at once instead of waiting for nobody, while a
crowd's batches still fill: the callers a batch has just answered come back within the wait. The wait
lasts at most max_delay, or `wait_fraction` of the version's last batch's run time where that is
longer: a caller that misses a batch that takes 150 ms waits for the whole of it and then its own, so
for a slow model a few milliseconds more for the expected company is the cheaper side.
Under load the queue refills while a batch runs, so batches grow by themselves.

A batch runs in the batcher's thread, so the event loop stays free, unless the version's recent batches
all ran within `inline_s` (scaled by rows): then it runs on the event loop itself. For a model that costs
microseconds, the hop to the thread and back (two wake-ups, a future, a callback) costs more CPU and
latency than the model, and blocking the loop that briefly delays nobody.

Requests whose inputs cannot be stacked (other shapes) run as separate groups; if a stacked group
fails, its requests are retried one by one so one bad request cannot fail its neighbours. A request
still queued at its deadline is answered with DeadlineExceeded and never run; when the queue is full,
submit refuses at once with QueueFull. Inputs named in `pad` (variable length text, by the family's
rules) are padded to the longest in their group along their axis, so sentences of different lengths
still share a batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("dlserve.inference")

Feeds = dict[str, np.ndarray]
QUEUED, RUNNING, EXPIRED = 0, 1, 2
# The evidence of company: the rows in flight around the last few batches, if they ran this recently.
RECENT_BATCHES = 8
RECENT_S = 1.0
INLINE_EVIDENCE = 8  # batches timed before one may run inline; the slowest of them decides


class QueueFull(Exception):
    pass


class DeadlineExceeded(Exception):
    pass


class BatcherClosed(Exception):
    pass


@dataclass(eq=False)
class Request:
    feeds: Feeds
    rows: int
    future: asyncio.Future
    enqueued: float
    state: int = QUEUED
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


@dataclass
class BatchStats:
    """What the batcher reports about each batch and request (wired to Prometheus by the caller)."""

    on_batch: Callable[[int, float], None] = lambda rows, seconds: None
    on_queue_time: Callable[[float], None] = lambda seconds: None
    on_depth: Callable[[int], None] = lambda depth: None


class Batcher:
    def __init__(self, name: str, run: Callable[[Feeds], Feeds], *, max_batch: int, max_delay_s: float,
                 max_queue: int, batchable: bool = True, stats: BatchStats | None = None,
                 pad: dict[str, tuple[int, object]] | None = None, inline_s: float = 0.0,
                 wait_fraction: float = 0.0):
        self.name = name
        self._run = run
        self.max_batch = max_batch if batchable else 1
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.batchable = batchable
        self.stats = stats or BatchStats()
        self.pad = pad or {}
        self.inline_s = inline_s
        self.wait_fraction = wait_fraction
        self._runs: deque[tuple[float, int]] = deque(maxlen=INLINE_EVIDENCE)  # (seconds, rows) of recent runs
        self._queue: deque[Request] = deque()
        self._live = 0  # queued requests not yet expired or taken
        self._live_rows = 0  # their rows
        self._running = False
        self._last_done = 0.0
        self._recent: deque[tuple[float, int]] = deque(maxlen=RECENT_BATCHES)  # (ended at, rows in flight)
        self._target = self.max_batch  # the rows a waiting runner wakes up for
        self._closed = False
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"batch-{name}")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{name}")

    @property
    def depth(self) -> int:
        return self._live

    async def submit(self, feeds: Feeds, rows: int, deadline: float) -> Feeds:
        """Queue `rows` rows and wait for exactly those rows of every output. `deadline` is monotonic time."""
        if self._closed:
            raise BatcherClosed(self.name)
        if self._live >= self.max_queue:
            raise QueueFull(self.name)
        loop = asyncio.get_running_loop()
        req = Request(feeds, rows, loop.create_future(), time.monotonic())
        req.timer = loop.call_later(max(0.0, deadline - req.enqueued), self._expire, req)
        self._queue.append(req)
        self._live += 1
        self._live_rows += rows
        self._idle.clear()
        self.stats.on_depth(self._live)
        self._wakeup.set()
        if self._queued_rows() >= self._target:
            self._full.set()
        try:
            return await req.future
        finally:
            req.timer.cancel()

    def _expire(self, req: Request) -> None:
        if req.state == QUEUED and not req.future.done():
            req.state = EXPIRED
            self._live -= 1
            self._live_rows -= req.rows
            self.stats.on_depth(self._live)
            req.future.set_exception(DeadlineExceeded(self.name))

    def _queued_rows(self) -> int:
        return self._live_rows

    async def _loop(self) -> None:
        while True:
            while not self._queue:
                if not self._running:
                    self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
            if self.max_delay_s > 0:
                await self._wait_for_company()
            batch = self._take()
            if not batch:
                continue
            self._running = True
            rows = sum(r.rows for r in batch)
            try:
                if self._cheap(rows):
                    results = self._execute(batch)
                else:
                    results = await asyncio.get_running_loop().run_in_executor(self._executor, self._execute, batch)
            except Exception as e:  # the executor itself failed (shut down): fail the batch, keep serving
                results = [e] * len(batch)
            finally:
                self._running = False
                self._last_done = time.monotonic()
                self._recent.append((self._last_done, rows + self._queued_rows()))
            for req, result in zip(batch, results, strict=True):
                if req.future.done():
                    continue  # the caller went away
                if isinstance(result, BaseException):
                    req.future.set_exception(result)
                else:
                    req.future.set_result(result)

    def _cheap(self, rows: int) -> bool:
        """Whether a batch of `rows` may run on the event loop: every recently timed run, scaled up to this
        many rows, took at most inline_s."""
        if self.inline_s <= 0 or len(self._runs) < INLINE_EVIDENCE:
            return False
        return all(seconds * max(1.0, rows / ran) <= self.inline_s for seconds, ran in self._runs)

    def expected_rows(self) -> int:
        """The rows worth waiting for: the most that were in flight around a batch of the last second."""
        now = time.monotonic()
        return min(self.max_batch, max((rows for done, rows in self._recent if now - done < RECENT_S), default=1))

    async def _wait_for_company(self) -> None:
        self._target = self.expected_rows()
        if self._queued_rows() >= self._target:
            return  # a lone caller (or everyone expected) is here: run now
        # Counted from the later of the oldest arrival and the end of the last batch: under load the
        # queued requests all arrived during that batch, and a short wait for the callers it just
        # answered to come back makes the next batch fuller.
        allowance = max(self.max_delay_s, self.wait_fraction * self._runs[-1][0] if self._runs else 0.0)
        wait = max(self._queue[0].enqueued, self._last_done) + allowance - time.monotonic()
        if wait > 0:
            self._full.clear()
            try:
                await asyncio.wait_for(self._full.wait(), wait)
            except TimeoutError:
                pass

    def _take(self) -> list[Request]:
        batch: list[Request] = []
        rows = 0
        now = time.monotonic()
        while self._queue:
            req = self._queue[0]
            if req.state != QUEUED or req.future.done():
                self._queue.popleft()
                if req.state == QUEUED:  # cancelled by its caller (client went away)
                    self._live -= 1
                    self._live_rows -= req.rows
                continue
            if batch and rows + req.rows > self.max_batch:
                break
            self._queue.popleft()
            req.state = RUNNING
            self._live -= 1
            self._live_rows -= req.rows
            batch.append(req)
            rows += req.rows
            self.stats.on_queue_time(now - req.enqueued)
        self.stats.on_depth(self._live)
        return batch

    def _execute(self, batch: list[Request]) -> list[Feeds | Exception]:
        """Runs in the batcher's thread: stack compatible requests, run, split rows back out."""
        results: dict[int, Feeds | Exception] = {}
        for group in _groups(batch, self.pad) if self.batchable else [[r] for r in batch]:
            try:
                for req, out in zip(group, self._run_group(group), strict=True):
                    results[id(req)] = out
            except Exception as e:
                if len(group) == 1:
                    results[id(group[0])] = e
                    continue
                for req in group:  # isolate the request that broke the stacked batch
                    try:
                        results[id(req)] = self._run_group([req])[0]
                    except Exception as single:
                        results[id(req)] = single
        return [results[id(r)] for r in batch]

    def _run_group(self, group: list[Request]) -> list[Feeds]:
        if len(group) == 1:
            feeds = group[0].feeds
        else:
            feeds = {k: np.concatenate(_padded([r.feeds[k] for r in group], *self.pad[k]) if k in self.pad
                                       else [r.feeds[k] for r in group]) for k in group[0].feeds}
        start = time.perf_counter()
        outputs = self._run(feeds)
        total = sum(r.rows for r in group)
        seconds = time.perf_counter() - start
        self._runs.append((seconds, total))
        self.stats.on_batch(total, seconds)
        if len(group) == 1:
            return [outputs]
        split, offset = [], 0
        for r in group:
            split.append({k: (v[offset:offset + r.rows] if v.ndim and v.shape[0] == total else v)
                          for k, v in outputs.items()})
            offset += r.rows
        return split

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until nothing is queued or running (used before freeing a replaced version)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("batcher %s still busy after %.0fs; closing anyway", self.name, timeout)

    async def close(self) -> None:
        self._closed = True
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        for req in self._queue:
            if not req.future.done():
                req.future.set_exception(BatcherClosed(self.name))
        self._queue.clear()
        self._executor.shutdown(wait=True)


def _groups(batch: list[Request], pad: dict[str, tuple[int, object]]) -> list[list[Request]]:
    """Requests whose inputs agree in dtype and every dimension but the first (and the padded axis of a
    padded input), in arrival order."""
    groups: dict[tuple, list[Request]] = {}
    for req in batch:
        key = tuple((k, v.dtype.str, v.ndim, tuple(d for i, d in enumerate(v.shape[1:], 1) if k not in pad
                                                   or i != pad[k][0]))
                    for k, v in sorted(req.feeds.items()))
        groups.setdefault(key, []).append(req)
    return list(groups.values())


def _padded(arrays: list[np.ndarray], axis: int, value: object) -> list[np.ndarray]:
    longest = max(a.shape[axis] for a in arrays)
    out = []
    for a in arrays:
        if a.shape[axis] == longest:
            out.append(a)
            continue
        widths = [(0, 0)] * a.ndim
        widths[axis] = (0, longest - a.shape[axis])
        out.append(np.pad(a, widths, constant_values=value))
    return out
