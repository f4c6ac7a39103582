"""The browser's sign-in: /v1/session (see app/web_sessions.py). Scripts keep using `Authorization: Bearer`."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from app.api.openapi import SESSION_SCHEME, problems
from app.errors import Unauthorized
from app.web_sessions import COOKIE, CSRF_HEADER, check_csrf, csrf_token

router = APIRouter(prefix="/v1/session", tags=["session"])
_SESSION_ONLY = {"security": [{SESSION_SCHEME: []}]}


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=256, description="an API key (dls_...): sent in this body only, "
                                                                "never in a URL")


class SessionOut(BaseModel):
    name: str = Field(description="the key's name")
    scopes: list[str] = Field(description="the key's scopes, which the session has")
    expires_at: datetime = Field(description="when the session ends (at the latest when its key expires)")
    csrf_token: str = Field(description=f"send it as {CSRF_HEADER} with every POST, PUT, PATCH and DELETE that "
                                        "the cookie signs")


def _out(name: str, scopes, expires_at: datetime, token: str) -> SessionOut:
    return SessionOut(name=name, scopes=sorted(scopes), expires_at=expires_at, csrf_token=csrf_token(token))


def _cookie(request: Request) -> str:
    token = request.cookies.get(COOKIE)
    if not token:
        raise Unauthorized("no session: sign in with POST /v1/session")
    return token


def _cookie_options(request: Request) -> dict:
    # Secure when the browser came over https (directly, or through a proxy uvicorn trusts)
    return {"path": "/", "httponly": True, "samesite": "strict", "secure": request.url.scheme == "https"}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SessionOut,
             responses=problems(401, 429), openapi_extra={"security": []})
def sign_in(body: SignIn, request: Request, response: Response) -> SessionOut:
    """Signs a browser in with an API key: the answer sets the `dlserve_session` cookie (HttpOnly,
    SameSite=Strict) and gives the CSRF token that unsafe requests signed by it must send."""
    address = request.client.host if request.client else "unknown"
    row, token = request.app.state.web_sessions.sign_in(body.key, address)
    max_age = max(1, int((row.expires_at - row.created_at).total_seconds()))
    response.set_cookie(COOKIE, token, max_age=max_age, **_cookie_options(request))
    response.headers["Cache-Control"] = "no-store"
    return _out(row.name, row.scopes.split(","), row.expires_at, token)


@router.get("", response_model=SessionOut, responses=problems(401), openapi_extra=_SESSION_ONLY)
def current_session(request: Request, response: Response) -> SessionOut:
    """The session the cookie signs in (a page reloaded learns who it is and its CSRF token again)."""
    token = _cookie(request)
    who = request.app.state.web_sessions.principal(token)
    response.headers["Cache-Control"] = "no-store"
    return _out(who.name, who.scopes, who.expires_at, token)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, responses=problems(401, 403),
               openapi_extra=_SESSION_ONLY)
def sign_out(request: Request) -> Response:
    """Ends the session on the server and clears the cookie (with the CSRF token, like every unsafe method)."""
    token = _cookie(request)
    check_csrf("DELETE", token, request.headers.get(CSRF_HEADER))
    request.app.state.web_sessions.end(token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(COOKIE, **_cookie_options(request))
    return response
