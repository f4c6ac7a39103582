"""The one place every error becomes RFC 9457 problem+json: the domain exceptions of app/errors.py,
validation errors, Starlette's HTTP errors (with the right `Allow` on 405/OPTIONS), database errors (never
quoted) and anything unexpected (logged with the request id, answered without detail)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, routing
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from app.errors import PROBLEM_JSON, DlserveError

log = logging.getLogger("dlserve")

_TITLES = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
    409: "Conflict", 413: "Payload too large", 415: "Unsupported media type", 422: "Unprocessable content",
    429: "Too many requests", 500: "Internal server error", 503: "Service unavailable", 504: "Deadline exceeded",
}


def request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "")


def problem(
    request: Request, status: int, detail: str, *, slug: str | None = None, title: str | None = None,
    headers: dict[str, str] | None = None, **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"urn:dlserve:problem:{slug or _TITLES.get(status, 'error').lower().replace(' ', '-')}",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request_id(request),
        **extra,
    }
    if request.url.path.startswith("/v2"):
        body["error"] = detail  # the Open Inference Protocol's error member, which Triton clients read
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes on this path (Starlette's own 405 names only the first route's)."""
    methods = {"OPTIONS"}
    contexts = getattr(routing, "iter_route_contexts", None)  # FastAPI >= 0.160 nests included routers
    routes = [(rc.path_format, rc.methods) for rc in contexts(request.app.routes)] if contexts else \
        [(r.path_format, getattr(r, "methods", None)) for r in request.app.routes if hasattr(r, "path_format")]
    for path_format, route_methods in routes:
        if route_methods and compile_path(path_format)[0].match(request.url.path):
            methods |= set(route_methods)
    return sorted(methods)


def _unreachable(exc: SQLAlchemyError) -> bool:
    """A lost or refused connection, a server restarting or out of connections (or a locked SQLite file): the
    request may succeed when retried, and the pool reconnects by itself."""
    if isinstance(exc, DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and (exc.connection_invalidated
                                            or isinstance(exc, OperationalError | InterfaceError))


def _field(loc: tuple | list) -> str:
    # ("body", "inputs", 0, "image") -> "body.inputs[0].image"
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def install_error_handlers(app: FastAPI) -> None:
    def _domain_problem(request: Request, exc: DlserveError):
        return problem(request, exc.status, exc.detail, slug=exc.slug, title=exc.title, headers=exc.headers,
                       **exc.extra)

    @app.exception_handler(DlserveError)
    async def _domain(request: Request, exc: DlserveError):
        return _domain_problem(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = [{"field": _field(e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "the request is not valid"
        return problem(request, 422, detail, slug="validation", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if isinstance(exc.__cause__, DlserveError):
            # FastAPI wraps whatever goes wrong while reading the body (here: the size limit) in a 400.
            return _domain_problem(request, exc.__cause__)
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}; see /docs for the API"
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            allow = ", ".join(allowed_methods(request))
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": allow})
            detail = f"{request.method} is not allowed on {request.url.path}; it takes {allow}"
            headers = {**(headers or {}), "Allow": allow}
        return problem(request, exc.status_code, detail, headers=headers)

    @app.exception_handler(SQLAlchemyError)
    async def _database(request: Request, exc: SQLAlchemyError):
        # The driver's message quotes SQL and parameters: it goes to the log, never into an answer.
        if _unreachable(exc):
            log.warning("database unreachable on %s %s (request %s): %s", request.method, request.url.path,
                        request_id(request), exc)
            return problem(request, 503, "the database cannot be reached; retry shortly", headers={"Retry-After": "5"},
                           slug="database-unavailable")
        if isinstance(exc, DataError):
            # A value no column can hold (a NUL character in PostgreSQL text, a string over a column's
            # length): the client's input, which a route should have refused by name. Logged to be fixed.
            log.warning("database refused a value on %s %s (request %s): %s", request.method, request.url.path,
                        request_id(request), exc.orig)
            return problem(request, 422, "a value in the request cannot be stored or looked up (a NUL character, "
                           "or a text longer than its limit)", slug="unstorable-value")
        log.exception("database error on %s %s (request %s)", request.method, request.url.path, request_id(request))
        return problem(request, 500, "an unexpected error occurred; the request id identifies it in the logs")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s (request %s)", request.method, request.url.path, request_id(request))
        return problem(request, 500, "an unexpected error occurred; the request id identifies it in the logs")
