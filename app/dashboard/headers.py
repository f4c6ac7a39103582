"""Security headers for what the dashboard and the docs serve (HTML pages and static files).

Pure ASGI, like app/middleware.py. The JSON API's answers are left as they are: only an HTML answer (a
page) or a file under /static gets these headers, so no API client sees a change.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No 'unsafe-inline' anywhere: every script and style is a file of this package, and user-controlled text
# is only ever inserted as text. blob: images are the previews of the files a user drops on try-it.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")
COMMON = [(b"X-Content-Type-Options", b"nosniff"), (b"Referrer-Policy", b"no-referrer")]
PAGE = [(b"Content-Security-Policy", CSP.encode()), (b"X-Frame-Options", b"DENY")]
STATIC_PREFIX = "/static/"


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(STATIC_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                html = any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers)
                if html or static:
                    names = {k.lower() for k, _ in headers}
                    # no-cache: revalidated on each load (ETag), so an upgrade never leaves old modules in use
                    extra = COMMON + (PAGE if html else [(b"Cache-Control", b"no-cache")])
                    headers += [(k, v) for k, v in extra if k.lower() not in names]
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
