"""API keys: `Authorization: Bearer dls_<prefix>_<secret>`, stored as sha256 (keys are 190-bit random
tokens, so a fast hash is enough; bcrypt would only slow every predict call). Scopes: read (sees datasets,
jobs, runs and models; changes nothing; cannot predict), predict, train (also reads), admin (everything).
A key may carry an expiry; past it the key is refused with a 401 that says so."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.tables import ApiKey
from app.errors import Forbidden, Unauthorized

SCOPES = ("read", "predict", "train", "admin")
KEY_PREFIX = "dls"
CACHE_SECONDS = 30.0  # how long a checked key is trusted without the database; also the revocation delay


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]
    key_id: int | None = None  # None for the DLSERVE_ADMIN_KEY from settings
    expires_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        if "admin" in self.scopes or scope in self.scopes:
            return True
        return scope == "read" and "train" in self.scopes  # who may change datasets and jobs may see them

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and (now or utcnow()) >= self.expires_at


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str) -> list[str]:
    scopes = sorted({s.strip() for s in text.split(",") if s.strip()})
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise ValueError(f"scopes must be a comma-separated subset of {', '.join(SCOPES)}; got {text!r}")
    return scopes


def create_key(session: Session, scopes: list[str], name: str | None = None,
               expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """Adds a key row (the caller commits) and returns it with the plaintext key, shown only this once."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(24)}"
    row = ApiKey(prefix=prefix, key_hash=hash_key(key), scopes=",".join(scopes), name=name, expires_at=expires_at)
    session.add(row)
    session.flush()
    return row, key


BOOTSTRAP_NAME = "local admin (make run)"


def bootstrap_admin_key(session: Session) -> str | None:
    """The first admin key of a database, at `dlserve serve`: created (and returned, the caller commits) only
    when the database holds no admin key that still works. Replicas starting at once on one database are
    serialised here (PostgreSQL: an advisory lock for this transaction; SQLite: its BEGIN IMMEDIATE), so
    exactly one creates it, whatever their DLSERVE_HOMEs; the others return None."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext('dlserve admin key bootstrap'))"))
    now = utcnow()
    rows = session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None))).all()
    if any("admin" in r.scopes.split(",") and (r.expires_at is None or r.expires_at > now) for r in rows):
        return None
    return create_key(session, ["admin"], BOOTSTRAP_NAME)[1]


class Authenticator:
    def __init__(self, sessions: sessionmaker[Session], admin_key: str | None):
        self.sessions = sessions
        self.admin_key = admin_key
        self._cache: dict[str, tuple[float, Principal]] = {}

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("this endpoint needs an API key: send 'Authorization: Bearer <key>'")
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise Unauthorized("the Authorization header must be 'Bearer <key>'")
        if self.admin_key and hmac.compare_digest(key.encode(), self.admin_key.encode()):
            return Principal("DLSERVE_ADMIN_KEY", frozenset({"admin"}))
        digest = hash_key(key)
        principal = self._lookup(key, digest)
        self._cache[digest] = (time.monotonic(), principal)
        return principal

    def cached(self, authorization: str | None) -> Principal | None:
        """The principal for a header seen in the last CACHE_SECONDS, without touching the database."""
        if not authorization or not authorization.startswith(("Bearer ", "bearer ")):
            return None
        key = authorization[7:].strip()
        if self.admin_key and hmac.compare_digest(key.encode(), self.admin_key.encode()):
            return Principal("DLSERVE_ADMIN_KEY", frozenset({"admin"}))
        hit = self._cache.get(hash_key(key))
        if hit and time.monotonic() - hit[0] < CACHE_SECONDS and not hit[1].expired():
            return hit[1]
        return None

    def forget(self, key_hash: str) -> None:
        """Drops a key from this process's cache (revoked here: refused at once, not after CACHE_SECONDS)."""
        self._cache.pop(key_hash, None)

    def _lookup(self, key: str, digest: str) -> Principal:
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            raise Unauthorized("the API key is not valid")
        with self.sessions() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
            if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
                raise Unauthorized("the API key is not valid or has been revoked")
            now = utcnow()
            if row.expires_at is not None and now >= row.expires_at:
                raise Unauthorized(f"the API key expired at {row.expires_at.isoformat(timespec='seconds')}; "
                                   "ask an admin for a new one")
            row.last_used_at = now
            s.commit()
            return Principal(row.name or f"key {row.prefix}", frozenset(row.scopes.split(",")), row.id,
                             row.expires_at)


def require_scope(principal: Principal, scope: str) -> Principal:
    if not principal.allows(scope):
        raise Forbidden(f"this API key lacks the '{scope}' scope (it has: {', '.join(sorted(principal.scopes))})",
                        required_scope=scope)
    return principal
