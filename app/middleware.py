"""Pure-ASGI middleware (no BaseHTTPMiddleware: it costs throughput on the predict path).

RequestContext gives every request an id (echoed as X-Request-ID), enforces the body size limits
before and while the body streams in, gives the body a deadline (408), and records request metrics by
route template.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PROBLEM_JSON, PayloadTooLarge, RequestTimeout
from app.metrics import HttpMetrics

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContext:
    def __init__(self, app: ASGIApp, *, body_limit: Callable[[str, str], int], metrics: HttpMetrics,
                 body_timeout_s: float = 15.0, body_min_rate: int = 32 * 1024, canonical_names: bool = True):
        self.app = app
        self.body_limit = body_limit
        self.metrics = metrics
        self.body_timeout_s = body_timeout_s
        self.body_min_rate = body_min_rate
        # h11 keeps the case it is given; under httptools app/server.py's _ConventionalHead gives it.
        self.canonical_names = canonical_names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid, declared = _request_headers(scope["headers"])
        rid = rid or os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = rid
        id_header = (b"X-Request-ID", rid.encode())
        canonical = self.canonical_names
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())
                message["headers"] = ([(canonical_name(k), v) for k, v in headers] if canonical else [*headers]) + \
                    [id_header]
            await send(message)

        limit = self.body_limit(scope["method"], scope["path"])
        try:
            if declared is not None and declared > limit:
                await _refuse_too_large(send_with_id, rid, declared, limit)
                status = 413
                return
            await self.app(scope, _guarded(receive, start, limit, self.body_timeout_s, self.body_min_rate),
                           send_with_id)
        finally:
            route = scope.get("route")
            self.metrics.observe(scope["method"], getattr(route, "path", "unmatched"), status,
                                 time.perf_counter() - start)


def canonical_name(name: bytes) -> bytes:
    # Header names are case-insensitive, but clients that keep headers in a plain dict look up
    # "Content-Type"; send the conventional form rather than the lowercase ASGI gives us.
    return _CANONICAL.get(name) or b"-".join(p.capitalize() for p in name.split(b"-"))


_CANONICAL = {b"content-type": b"Content-Type", b"content-length": b"Content-Length", b"location": b"Location",
              b"retry-after": b"Retry-After", b"www-authenticate": b"WWW-Authenticate",
              b"x-request-id": b"X-Request-ID"}


def _guarded(receive: Receive, start: float, limit: int, timeout_s: float, min_rate: int) -> Receive:
    """receive() with the body's bounds: at most `limit` bytes, and the whole body by `timeout_s` after
    the headers plus a second per `min_rate` bytes received: a deadline, not an idle timer, so a client
    trickling a byte at a time is cut off, while a large upload at an honest rate never is."""
    seen = 0
    done = False

    async def wrapped() -> Message:
        nonlocal seen, done
        if done:  # after the body, receive() waits for the disconnect, which may never come
            return await receive()
        left = start + timeout_s + seen / min_rate - time.perf_counter()
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for wraps receive() in a task of its own,
            # which costs more than the rest of this middleware on a small request.
            async with asyncio.timeout(max(left, 0.001)):
                message = await receive()
        except TimeoutError:
            raise RequestTimeout(f"the request body did not arrive in time ({seen} bytes in "
                                 f"{time.perf_counter() - start:.0f} s)") from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes", limit_bytes=limit)
            done = not message.get("more_body", False)
        return message

    return wrapped


def _request_headers(headers) -> tuple[str | None, int | None]:
    """-> (the client's X-Request-ID if it is a safe one, the declared Content-Length), in one pass."""
    rid = length = None
    seen_id = seen_length = False  # the first of each counts
    for k, v in headers:
        if k == b"x-request-id" and not seen_id:
            seen_id, value = True, v.decode("latin-1")
            rid = value if _SAFE_ID.match(value) else None
        elif k == b"content-length" and not seen_length:
            seen_length = True
            try:
                length = int(v)
            except ValueError:
                length = None
    return rid, length


async def _refuse_too_large(send: Send, rid: str, declared: int, limit: int) -> None:
    body = json.dumps({
        "type": "urn:dlserve:problem:payload-too-large", "title": "Payload too large", "status": 413,
        "detail": f"request body of {declared} bytes is over the limit of {limit} bytes",
        "instance": rid, "limit_bytes": limit,
    }).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"Content-Type", PROBLEM_JSON.encode()), (b"Content-Length", str(len(body)).encode()),
        (b"Connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})
