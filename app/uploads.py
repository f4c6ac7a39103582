"""Multipart uploads spool under DLSERVE_HOME (the artifact store's .staging folder), never the system
temp folder: Starlette keeps the first megabyte of each file part in memory and then rolls over to a
temporary file in tempfile's default folder, which on a shared host is someone else's disk (and a tmpfs
is memory). SpoolUnder tells the form parser, per request, where that file goes; the size limits are
the body limits of app.middleware, counted on the bytes received."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from tempfile import SpooledTemporaryFile

from starlette import formparsers
from starlette.types import ASGIApp, Receive, Scope, Send

_spool_dir: ContextVar[Path | None] = ContextVar("dlserve_spool_dir", default=None)


class _SpoolUnderHome(SpooledTemporaryFile):
    def __init__(self, max_size: int = 0, *args, **kwargs):
        folder = _spool_dir.get()
        if folder is not None and kwargs.get("dir") is None:
            kwargs["dir"] = folder
        super().__init__(max_size, *args, **kwargs)


# Starlette's form parser names SpooledTemporaryFile as a module global: this subclass takes its place,
# and behaves as the original wherever no SpoolUnder is in effect.
formparsers.SpooledTemporaryFile = _SpoolUnderHome


class SpoolUnder:
    """ASGI middleware: multipart file parts of the requests it passes spool into `folder`."""

    def __init__(self, app: ASGIApp, *, folder: Path):
        self.app = app
        self.folder = folder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _spool_dir.set(self.folder)
        try:
            await self.app(scope, receive, send)
        finally:
            _spool_dir.reset(token)
