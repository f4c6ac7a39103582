"""Browser sessions (the dashboard): `POST /v1/session` trades an API key for an HttpOnly, SameSite=Strict
cookie, so that the key never sits in a URL, a log line or the browser's storage.

The cookie carries a random token; the database keeps only its sha256 (as for keys), with the scopes and
expiry of the key it was opened with (never past the key's own). Each request signed by the cookie looks
the session up, with its key: a revoked or expired key ends its sessions at once, in every API process.
Unsafe methods signed by the cookie must also send `X-CSRF-Token`, an HMAC of the cookie's token: another
site can make the browser send the cookie, never read the token. Failed sign-ins are limited per client
address (`signin_failures_per_minute`); keys are compared in constant time (app/auth.py).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from app.auth import Authenticator, Principal, hash_key
from app.db.base import utcnow
from app.db.tables import ApiKey, WebSession
from app.errors import Forbidden, TooManyRequests, Unauthorized

COOKIE = "dlserve_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_TOKEN_CHARS = 128
_WINDOW_S = 60.0
_MAX_ADDRESSES = 10_000  # addresses remembered for the sign-in limit; older ones are forgotten first


def csrf_token(token: str) -> str:
    """Derived from the cookie's secret: nothing more is stored, and every API process can check it."""
    return hmac.new(token.encode(), b"dlserve csrf", hashlib.sha256).hexdigest()


def check_csrf(method: str, token: str, sent: str | None) -> None:
    if method in SAFE_METHODS:
        return
    if not sent or not hmac.compare_digest(sent.encode(), csrf_token(token).encode()):
        raise Forbidden(f"a {method} signed in by the session cookie must send the {CSRF_HEADER} header that "
                        "POST /v1/session and GET /v1/session return", field=f"header.{CSRF_HEADER}")


class WebSessions:
    def __init__(self, sessions: sessionmaker[Session], auth: Authenticator, *, lifetime_s: int,
                 failures_per_minute: int):
        self.sessions, self.auth = sessions, auth
        self.lifetime_s, self.failures_per_minute = lifetime_s, failures_per_minute
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def sign_in(self, key: str, address: str) -> tuple[WebSession, str]:
        """A new session for `key` -> (row, cookie token). 401 for a key that is not valid, 429 past the
        failure limit of `address` (checked first, so a guesser learns nothing more once limited)."""
        self._check_rate(address)
        try:
            principal = self.auth.authenticate(f"Bearer {key}")
        except Unauthorized:
            self._failed(address)
            raise
        now = utcnow()
        expires = now + timedelta(seconds=self.lifetime_s)
        if principal.expires_at is not None:
            expires = min(expires, principal.expires_at)
        token = secrets.token_urlsafe(32)
        row = WebSession(token_hash=hash_key(token), key_id=principal.key_id, name=principal.name[:200],
                         admin_digest=hash_key(key) if principal.key_id is None else None,
                         scopes=",".join(sorted(principal.scopes)), created_at=now, expires_at=expires)
        with self.sessions() as s:
            s.execute(delete(WebSession).where(WebSession.expires_at <= now))  # the ended ones, now and then
            s.add(row)
            s.commit()
        return row, token

    def principal(self, token: str) -> Principal:
        """Who the cookie's session signs in as; 401 when it is unknown, ended, expired, or its key is."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized("the session cookie is not valid; sign in again")
        with self.sessions() as s:
            found = s.execute(select(WebSession, ApiKey.revoked_at, ApiKey.expires_at)
                              .outerjoin(ApiKey, ApiKey.id == WebSession.key_id)
                              .where(WebSession.token_hash == hash_key(token))).first()
        if found is None:
            raise Unauthorized("the session has ended or is not valid; sign in again")
        row, revoked_at, key_expires_at = found
        now = utcnow()
        if row.expires_at <= now:
            raise Unauthorized(f"the session expired at {_when(row.expires_at)}; sign in again")
        if row.key_id is not None and revoked_at is not None:
            raise Unauthorized("the session's API key has been revoked; sign in with another key")
        if row.key_id is not None and key_expires_at is not None and key_expires_at <= now:
            raise Unauthorized(f"the session's API key expired at {_when(key_expires_at)}")
        if row.key_id is None and not (self.auth.admin_key and
                                       hmac.compare_digest(hash_key(self.auth.admin_key), row.admin_digest or "")):
            raise Unauthorized("the session was opened with a DLSERVE_ADMIN_KEY that is no longer set; sign in again")
        return Principal(row.name, frozenset(row.scopes.split(",")), row.key_id, row.expires_at)

    def end(self, token: str) -> None:
        with self.sessions() as s:
            s.execute(delete(WebSession).where(WebSession.token_hash == hash_key(token[:MAX_TOKEN_CHARS])))
            s.commit()

    def _check_rate(self, address: str) -> None:
        with self._lock:
            recent = self._recent(address)
            if len(recent) >= self.failures_per_minute:
                wait = _WINDOW_S - (time.monotonic() - recent[0])
                raise TooManyRequests(f"too many failed sign-ins from this address; retry in {max(1, round(wait))} s",
                                      retry_after=wait)

    def _failed(self, address: str) -> None:
        with self._lock:
            if len(self._failures) >= _MAX_ADDRESSES:
                for other in [a for a in self._failures if not self._recent(a)]:
                    del self._failures[other]
                while len(self._failures) >= _MAX_ADDRESSES:
                    del self._failures[next(iter(self._failures))]
            self._failures.setdefault(address, deque()).append(time.monotonic())

    def _recent(self, address: str) -> deque[float]:
        recent = self._failures.get(address, deque())
        while recent and time.monotonic() - recent[0] > _WINDOW_S:
            recent.popleft()
        return recent


def end_sessions_of_key(session: Session, key_id: int) -> None:
    """A revoked key's sessions end with it (the caller commits)."""
    session.execute(delete(WebSession).where(WebSession.key_id == key_id))


def _when(at: datetime) -> str:
    return at.isoformat(timespec="seconds")
