"""The inference routes (task-level predict and V2 infer) without FastAPI's request machinery.

For every request FastAPI matches the path against its routes (twice, through its nested routers),
solves the route's dependencies, validates its declared parameters and wraps the endpoint in its
request handling; with a small model that costs more than the model (benchmarks/request_path.py). These
routes read their body themselves, and their only declared parameters are path segments, the key and,
for predict, an optional query string. So a request for one of them with no query string is matched here
by one regular expression and handed straight to the route's own endpoint function, with the principal
from the same key check (`app.api.deps.check_key`), answered on failure by the same exception handlers
(`app.api.problems`) and passed through the same middleware (request id, body limits and deadline,
metrics). Nothing is implemented twice: each hot route is its template, its scope and a line that calls
the endpoint.

The FastAPI routes stay as they are: they are the OpenAPI document, and they answer whatever this lane
passes on: a query string (FastAPI validates `version` and `alias`), a version segment that is not a
plain number in range (FastAPI's 422 names it), any other method (405 with `Allow`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.deps import check_key
from app.api.openapi import INT32_MAX
from app.auth import Principal

Endpoint = Callable[[Request, dict, Principal], Awaitable[Response]]


@dataclass(frozen=True)
class HotRoute:
    path: str  # the FastAPI route's template: also the metrics' route label (app/middleware.py reads .path)
    scope: str  # the key scope the route's dependency asks for
    call: Endpoint  # (request, path parameters, principal) -> the endpoint's answer
    numbers: tuple[str, ...] = ()  # path parameters that are version numbers (1..INT32_MAX), passed as int
    regex: re.Pattern = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Starlette's default path convertor: a segment of one or more characters other than "/"
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path)
        object.__setattr__(self, "regex", re.compile(f"^{pattern}$"))

    def match(self, path: str) -> dict | None:
        m = self.regex.match(path)
        if m is None:
            return None
        params = m.groupdict()
        for name in self.numbers:
            value = params[name]
            number = int(value) if value.isascii() and value.isdigit() and len(value) <= 10 else 0
            if not 1 <= number <= INT32_MAX:
                return None  # FastAPI's validation answers it, in its words
            params[name] = number
        return params


class HotPaths:
    """ASGI middleware, inside the request middleware: serves the hot routes, passes everything else on."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[HotRoute]):
        self.app = app
        self.routes = tuple(routes)
        self._handlers: dict | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope["query_string"]:
            path = scope["path"]
            for route in self.routes:
                params = route.match(path)
                if params is not None:
                    await self._serve(route, params, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, route: HotRoute, params: dict, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = route
        scope["path_params"] = params
        request = Request(scope, receive, send)
        try:
            response = await route.call(request, params, await check_key(request, route.scope))
        except Exception as exc:
            handler = self._handler(scope, exc)
            if handler is None:
                raise  # to Starlette's ServerErrorMiddleware, as from any route: the 500 problem, and the log
            response = await handler(request, exc)
        await response(scope, receive, send)

    def _handler(self, scope: Scope, exc: Exception):
        """The app's handler for this exception, as Starlette's ExceptionMiddleware would choose it (the most
        specific class in its MRO); the catch-all for Exception belongs to ServerErrorMiddleware."""
        if self._handlers is None:
            self._handlers = {k: v for k, v in scope["app"].exception_handlers.items()
                              if isinstance(k, type) and k is not Exception}
        for cls in type(exc).__mro__:
            if cls in self._handlers:
                return self._handlers[cls]
        return None
