"""The dashboard's pages and static files, and /docs (Swagger UI from the package, not a CDN).

Every page path answers the same shell; the page's module is chosen in the browser from the path, and
the view's state (sort, filters, selected runs, axes) lives in the query string, so a link shares a view.
None of these routes is in the OpenAPI document: they are not the API.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse
from starlette.staticfiles import StaticFiles

from app.dashboard.headers import SecurityHeaders

STATIC = Path(__file__).parent / "static"
# path -> file; "{...}" parts are any one segment (a run id, a model name)
PAGES = ("/", "/signin", "/runs", "/runs/{job_id}", "/compare", "/new", "/models", "/models/{name}", "/try",
         "/datasets")


SESSION_COOKIE = "dlserve_session"  # set by POST /v1/session (HttpOnly: the page's scripts cannot see it)


def _file(name: str):
    path = STATIC / name

    async def answer() -> FileResponse:
        return FileResponse(path, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    return answer


def _page(shell):
    """A page for a signed-in browser: without a session cookie, straight to the sign-in page (which
    comes back here after), rather than a shell whose first request would be refused."""
    async def answer(request: Request):
        if request.url.path != "/signin" and SESSION_COOKIE not in request.cookies:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)
        return await shell()

    return answer


def install(app: FastAPI) -> None:
    """Adds the pages, /docs and /static to `app` (whose own docs routes must be off: docs_url=None)."""
    shell = _page(_file("shell.html"))
    for path in PAGES:
        app.add_api_route(path, shell, methods=["GET"], include_in_schema=False, name=f"page {path}")
    app.add_api_route("/docs", _file("docs.html"), methods=["GET"], include_in_schema=False, name="docs")
    app.mount("/static", StaticFiles(directory=STATIC, follow_symlink=False), name="static")
    app.add_middleware(SecurityHeaders)
