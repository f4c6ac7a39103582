"""The HTTP/1.1 protocols dlserve runs uvicorn with: uvicorn's httptools protocol (the default) or its h11
protocol, each plus a header deadline and a connection cap, which uvicorn does not have.

uvicorn's only timer is its keep-alive timeout, and every byte received restarts it: a client sending
one byte every few seconds holds a connection (and a file descriptor) for as long as it likes. Here a
request's line and headers must be complete within `header_timeout_s` of the connection opening or of
the previous response, however they trickle in. The body has its own deadline in the ASGI layer
(app/middleware.py), where a 408 problem+json can be answered.

httptools (a C parser) costs the event loop a fraction of what h11 (pure Python) does per request.
uvicorn's httptools protocol writes response header names in lowercase, which HTTP/1.1 allows (RFC 9110
section 5.1: field names are case-insensitive), but clients that copy the headers into a plain dict and
look up "Content-Type" exist (a contract check of ours did): each response's head goes out through
`_ConventionalHead`, which gives the names the case h11 sends (tests/app/test_header_case.py).

`dlserve serve` passes the class itself (it must be importable by name: uvicorn's worker processes
unpickle it) and it reads the settings from the environment; the test server passes `with_settings()`.
"""

from __future__ import annotations

import asyncio
import json
import resource

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.middleware import canonical_name
from app.settings import Settings, get_settings


def _raw_problem(status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> bytes:
    body = json.dumps({"type": f"urn:dlserve:problem:{reason.lower().replace(' ', '-')}", "title": reason,
                       "status": status, "detail": detail}).encode()
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/problem+json",
             f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Deadlines:
    """The header deadline and the connection cap, for either uvicorn protocol (listed after this class);
    a subclass says only whether the client is between requests (`_between_requests`)."""

    settings: Settings | None = None  # None: read from the environment (dlserve serve)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        s = self.settings or get_settings()
        self.header_timeout_s = s.header_timeout_s
        self.max_connections = s.max_connections
        self._header_timer: asyncio.TimerHandle | None = None
        self._armed_for = None  # the cycle that was current when the timer was armed

    @classmethod
    def with_settings(cls, settings: Settings) -> type:
        return type(f"{cls.__name__}WithSettings", (cls,), {"settings": settings})

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            # Answered, not just dropped, so a client (or a load balancer) knows to come back.
            transport.write(_raw_problem(503, "Service Unavailable",
                                         f"the server is at its limit of {self.max_connections} connections",
                                         {"Retry-After": "1"}))
            transport.close()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_timer is not None and self.cycle is not self._armed_for:
            self._disarm()  # a new request's headers are complete; the app (and the body deadline) take over

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Also covers a client that keeps trickling the body of a request that has been answered
        # already: that request's cycle stays current, so the timer fires and closes the connection.
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._armed_for = self.cycle
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.cycle is not self._armed_for:
            return
        if self._between_requests():  # not mid-body of an answered one: its headers are what is late
            self.transport.write(_raw_problem(
                408, "Request Timeout", f"the request's headers did not arrive within {self.header_timeout_s:g} s"))
        self.transport.close()

    def _between_requests(self) -> bool:
        raise NotImplementedError


class _ConventionalHead:
    """The transport one response cycle writes through: the response's head (status line and header lines,
    which uvicorn writes in one call) leaves with the header names in their conventional case; the body, and
    a 100 Continue, pass untouched."""

    __slots__ = ("_transport", "_head_sent")

    def __init__(self, transport: asyncio.Transport):
        self._transport = transport
        self._head_sent = False

    def write(self, data: bytes) -> None:
        if not self._head_sent and data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 100 "):
            self._head_sent = True
            lines = data.split(b"\r\n")
            for i in range(1, len(lines)):
                name, sep, value = lines[i].partition(b": ")
                if sep:
                    lines[i] = canonical_name(name) + sep + value
            data = b"\r\n".join(lines)
        self._transport.write(data)

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class DlserveHttptoolsProtocol(_Deadlines, HttpToolsProtocol):
    _in_body = False  # between a request's headers and the end of its body

    def on_headers_complete(self) -> None:
        self._in_body = True
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not before:
            self.cycle.transport = _ConventionalHead(self.transport)

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def _between_requests(self) -> bool:
        return not self._in_body and (self.cycle is None or self.cycle.response_complete)


class DlserveH11Protocol(_Deadlines, H11Protocol):
    def _between_requests(self) -> bool:
        return self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE


PROTOCOLS = {"httptools": DlserveHttptoolsProtocol, "h11": DlserveH11Protocol}


def raise_open_files_limit(max_connections: int) -> None:
    """Lifts the soft limit on open files (often 1024) to what the connection cap needs, within the hard
    limit: past it, accept() fails before the cap could answer."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max_connections + 256  # database, model and log files beside the sockets
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
