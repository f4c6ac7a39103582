"""What the task-level and the V2 routes share: deadlines, submitting to a batcher with engine errors
turned into problem+json, and recording each request in the metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from app.errors import DlserveError, GatewayTimeout, PayloadTooLarge, ServiceUnavailable, TooManyRequests, Unprocessable
from app.inference.batcher import BatcherClosed, DeadlineExceeded, QueueFull
from app.inference.loaded import LoadedModel
from app.inference.metrics import InferenceMetrics
from app.settings import Settings
from models.common.errors import InputError, InputTooLarge


def deadline(settings: Settings, timeout_ms: object, field: str) -> tuple[float, int]:
    """-> (monotonic deadline, the timeout in ms). A client may ask for up to max_request_timeout_ms."""
    if timeout_ms is None:
        ms = settings.request_timeout_ms
    elif isinstance(timeout_ms, (int, float)) and not isinstance(timeout_ms, bool) and \
            0 < timeout_ms <= settings.max_request_timeout_ms:
        ms = timeout_ms
    else:
        raise Unprocessable(f"{field} must be a number of milliseconds between 1 and "
                            f"{settings.max_request_timeout_ms}", field=field)
    return time.monotonic() + ms / 1000, int(ms)


def input_problem(e: InputError) -> DlserveError:
    cls = PayloadTooLarge if isinstance(e, InputTooLarge) else Unprocessable
    return cls(str(e), field=e.field)


async def submit(lm: LoadedModel, feeds: dict[str, np.ndarray], rows: int, until: float,
                 ms: int) -> dict[str, np.ndarray]:
    try:
        return await lm.batcher.submit(feeds, rows, until)
    except QueueFull:
        raise TooManyRequests(f"model {lm.name!r} version {lm.version} has {lm.batcher.max_queue} requests queued, "
                              "its limit; retry shortly", retry_after=1) from None
    except DeadlineExceeded:
        raise GatewayTimeout(f"the request waited its whole deadline of {ms} ms in model {lm.name!r}'s queue "
                             "and was not run") from None
    except BatcherClosed:
        raise ServiceUnavailable(f"model {lm.name!r} version {lm.version} was unloaded while the request waited; "
                                 "retry", retry_after=1) from None


def check_capacity(lm: LoadedModel, n: int) -> None:
    """Refuse a many-input request up front rather than queue part of it."""
    if lm.batcher.depth + n > lm.batcher.max_queue:
        raise TooManyRequests(f"model {lm.name!r} version {lm.version} has {lm.batcher.depth} requests queued "
                              f"(limit {lm.batcher.max_queue}); {n} more do not fit; retry shortly", retry_after=1)


@contextmanager
def recorded(metrics: InferenceMetrics, lm: LoadedModel, api: str) -> Iterator[None]:
    start = time.perf_counter()
    status = 500
    try:
        yield
        status = 200
    except DlserveError as e:
        status = e.status
        raise
    finally:
        metrics.record(lm.name, lm.version, api, status, time.perf_counter() - start)
