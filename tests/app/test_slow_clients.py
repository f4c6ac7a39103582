"""Slow clients against a real uvicorn with the protocol `dlserve serve` runs: a client trickling its
headers or its body a byte at a time is cut off at a deadline (the defaults drop a byte-every-5-s
client within 30 s; here the deadlines are 1.5 s to keep the test short), and while hundreds of such
sockets are open, ordinary requests are still answered."""

from __future__ import annotations

import json
import select
import socket
import time

import httpx
import pytest

from app.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.live_server import live_server

DEADLINE = 1.5


def _serve(settings, parser: str = "httptools"):
    s = settings.model_copy(update={"header_timeout_s": DEADLINE, "body_timeout_s": DEADLINE,
                                    "body_min_rate_bytes_s": 1024, "max_connections": 540, "http_parser": parser})
    with live_server(s) as url:
        host, port = url.split(":")
        yield host, int(port)


@pytest.fixture
def server(settings):
    yield from _serve(settings)


@pytest.fixture(params=["httptools", "h11"])
def either_server(request, settings):
    """With each HTTP parser: each tells the header deadline whether a request is under way its own way."""
    yield from _serve(settings, request.param)


def _connect(addr) -> socket.socket:
    s = socket.create_connection(addr, timeout=5)
    s.setblocking(False)
    return s


def _trickle(socks: dict[str, socket.socket], prefixes: dict[str, bytes], every: float, limit: float):
    """Sends each socket its prefix, then one byte every `every` s until the server closes it;
    -> {name: (seconds until closed, what the server sent)}."""
    start = time.monotonic()
    for name, s in socks.items():
        s.sendall(prefixes[name])
    got = {name: b"" for name in socks}
    closed: dict[str, float] = {}
    next_byte = start
    while len(closed) < len(socks) and time.monotonic() - start < limit:
        now = time.monotonic()
        if now >= next_byte:
            for name, s in socks.items():
                if name not in closed:
                    try:
                        s.send(b"a")
                    except OSError:
                        closed[name] = now - start
            next_byte = now + every
        readable, _, _ = select.select([s for n, s in socks.items() if n not in closed], [], [], 0.05)
        for name, s in socks.items():
            if s in readable:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                got[name] += data
                if not data:
                    closed[name] = time.monotonic() - start
    return {name: (closed.get(name), got[name]) for name in socks}


def test_trickled_headers_and_bodies_are_cut_off_at_their_deadlines(either_server):
    server = either_server
    auth = f"Authorization: Bearer {ADMIN_KEY}\r\n".encode()
    prefixes = {
        "headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        "body": b"POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\n" + auth
                + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        # answered without its body being read (405): the rest of it must not hold the connection
        "answered": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
        "silent": b"",
    }
    socks = {name: _connect(server) for name in prefixes}
    socks_silent = socks.pop("silent")
    try:
        result = _trickle(socks, prefixes, every=0.25, limit=10)
        for name, (seconds, _) in result.items():
            assert seconds is not None and seconds < DEADLINE + 1.5, (name, result)
        assert result["headers"][1].startswith(b"HTTP/1.1 408 ")
        head, _, body = result["body"][1].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ") and b"application/problem+json" in head, result["body"]
        assert "did not arrive in time" in json.loads(body)["detail"]
        assert result["answered"][1].startswith(b"HTTP/1.1 405 ") and result["answered"][1].count(b"HTTP/1.1") == 1
        # a connection that never says anything is closed too (uvicorn's keep-alive timer is not armed yet)
        socks_silent.setblocking(True)
        socks_silent.settimeout(DEADLINE + 2)
        assert socks_silent.recv(1024).startswith(b"HTTP/1.1 408 ")
    finally:
        for s in [*socks.values(), socks_silent]:
            s.close()


def test_the_default_deadlines_drop_a_byte_every_5_s_within_30_s():
    s = Settings(_env_file=None)
    # headers at most header_timeout_s, then a body of n bytes at most body_timeout_s + n / min rate
    assert s.header_timeout_s + s.body_timeout_s + 10 / s.body_min_rate_bytes_s < 30
    assert s.max_connections >= 4 * 128  # the serving benchmark's 128 concurrent clients, with room


def test_ordinary_requests_are_answered_while_500_slow_sockets_are_open(server):
    slow = []
    try:
        for _ in range(500):
            s = socket.create_connection(server, timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            slow.append(s)
        base = f"http://{server[0]}:{server[1]}"
        t0 = time.monotonic()
        with httpx.Client(base_url=base, timeout=5) as c:
            assert all(c.get("/healthz").status_code == 200 for _ in range(20))
        assert time.monotonic() - t0 < 2
        # over the cap (540 here): answered 503 with Retry-After, not left hanging
        extra = [socket.create_connection(server, timeout=5) for _ in range(60)]
        answers = []
        for s in extra:
            s.settimeout(0.5)
            try:
                answers.append(s.recv(1024))
            except TimeoutError:
                answers.append(b"")
            s.close()
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503 ")]
        assert refused and all(b"Retry-After: 1" in a for a in refused)
        # and the slow ones are all gone within the deadline
        deadline = time.monotonic() + DEADLINE + 3
        for s in slow:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            assert s.recv(1024).startswith(b"HTTP/1.1 408 ")
    finally:
        for s in slow:
            s.close()
