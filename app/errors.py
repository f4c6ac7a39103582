"""Domain exceptions: errors a client can act on, each with its status. Plain Python (no web framework),
so that workers and the CLI raise them too; app/api/problems.py turns them, and every other error, into
RFC 9457 problem+json answers."""

from __future__ import annotations

from typing import Any

PROBLEM_JSON = "application/problem+json"


class DlserveError(Exception):
    """An error a client can act on. Subclasses fix the status; the message is the `detail`."""

    status = 400
    title = "Bad request"
    slug = "bad-request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class Unauthorized(DlserveError):
    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str, **kw: Any):
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **kw)


class Forbidden(DlserveError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(DlserveError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(DlserveError):
    status, title, slug = 409, "Conflict", "conflict"


class RequestTimeout(DlserveError):
    status, title, slug = 408, "Request timeout", "request-timeout"

    def __init__(self, detail: str, **kw: Any):
        # The rest of the body may still be on its way: close, rather than read it as the next request.
        super().__init__(detail, headers={"Connection": "close"}, **kw)


class PayloadTooLarge(DlserveError):
    status, title, slug = 413, "Payload too large", "payload-too-large"


class UnsupportedMediaType(DlserveError):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


class Unprocessable(DlserveError):
    status, title, slug = 422, "Unprocessable content", "unprocessable"


class TooManyRequests(DlserveError):
    status, title, slug = 429, "Too many requests", "too-many-requests"

    def __init__(self, detail: str, retry_after: float = 1, **kw: Any):
        super().__init__(detail, headers={"Retry-After": str(max(1, round(retry_after)))}, **kw)


class ServiceUnavailable(DlserveError):
    status, title, slug = 503, "Service unavailable", "unavailable"

    def __init__(self, detail: str, retry_after: float = 5, **kw: Any):
        super().__init__(detail, headers={"Retry-After": str(max(1, round(retry_after)))}, **kw)


class GatewayTimeout(DlserveError):
    status, title, slug = 504, "Deadline exceeded", "deadline-exceeded"
