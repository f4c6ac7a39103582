"""API key routes: /v1/keys (admin scope). Keys can be managed from any machine that holds an admin key;
the secret is returned once, at creation, and never again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from app.api.deps import AdminKey, SessionDep
from app.api.openapi import Offset
from app.auth import SCOPES, create_key, parse_scopes
from app.db.base import utcnow
from app.db.tables import ApiKey
from app.errors import NotFound, Unprocessable
from app.web_sessions import end_sessions_of_key

KeyPrefix = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{1,64}$", description="the key's prefix (dls_<prefix>_...)")]
router = APIRouter(prefix="/v1/keys", tags=["keys"])
MAX_LIFETIME_S = 10 * 365 * 24 * 3600


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scopes: list[str] = Field(min_length=1, max_length=len(SCOPES), description=f"a subset of {', '.join(SCOPES)}")
    name: str | None = Field(None, max_length=200, description="a label to recognise the key by")
    expires_at: datetime | None = Field(None, description="when the key stops working (UTC if no zone is given)")
    expires_in_s: int | None = Field(None, ge=1, le=MAX_LIFETIME_S, description="or: seconds from now")


class KeyOut(BaseModel):
    prefix: str = Field(description="the public part of the key (dls_<prefix>_...), used to revoke it")
    name: str | None
    scopes: list[str]
    state: str = Field(description="active, expired or revoked")
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="the secret; shown only in this answer (it is stored hashed)")


class KeyPage(BaseModel):
    items: list[KeyOut]
    total: int
    limit: int
    offset: int


def key_out(row: ApiKey, now: datetime | None = None) -> KeyOut:
    now = now or utcnow()
    state = "revoked" if row.revoked_at else "expired" if row.expires_at and row.expires_at <= now else "active"
    return KeyOut(prefix=row.prefix, name=row.name, scopes=row.scopes.split(","), state=state,
                  created_at=row.created_at, last_used_at=row.last_used_at, expires_at=row.expires_at,
                  revoked_at=row.revoked_at)


def _expiry(body: KeyIn) -> datetime | None:
    if body.expires_at is not None and body.expires_in_s is not None:
        raise Unprocessable("give expires_at or expires_in_s, not both", field="expires_in_s")
    if body.expires_in_s is not None:
        return utcnow() + timedelta(seconds=body.expires_in_s)
    if body.expires_at is None:
        return None
    at = body.expires_at if body.expires_at.tzinfo else body.expires_at.replace(tzinfo=UTC)
    now = utcnow()
    if at <= now:
        raise Unprocessable(f"expires_at {at.isoformat()} is in the past", field="expires_at")
    if at > now + timedelta(seconds=MAX_LIFETIME_S):
        raise Unprocessable("expires_at is more than 10 years away", field="expires_at")
    return at


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create(body: KeyIn, _: AdminKey, session: SessionDep, response: Response) -> KeyCreated:
    try:
        scopes = parse_scopes(",".join(body.scopes))
    except ValueError:
        raise Unprocessable(f"scopes must be a subset of {', '.join(SCOPES)}; got {body.scopes}",
                            field="scopes") from None
    row, secret = create_key(session, scopes, body.name, _expiry(body))
    session.commit()
    response.headers["Location"] = f"/v1/keys/{row.prefix}"
    return KeyCreated(**key_out(row).model_dump(), key=secret)


@router.get("", response_model=KeyPage)
def list_keys(
    _: AdminKey, session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Offset = 0,
) -> KeyPage:
    rows = session.scalars(select(ApiKey).order_by(ApiKey.id).limit(limit).offset(offset)).all()
    total = session.scalar(select(func.count()).select_from(ApiKey)) or 0
    now = utcnow()
    return KeyPage(items=[key_out(r, now) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{prefix}", response_model=KeyOut)
def get_key(prefix: KeyPrefix, _: AdminKey, session: SessionDep) -> KeyOut:
    return key_out(_find(session, prefix))


@router.delete("/{prefix}", status_code=status.HTTP_204_NO_CONTENT)
def delete_key(prefix: KeyPrefix, _: AdminKey, session: SessionDep, request: Request) -> Response:
    """Revokes the key (the row stays, listed as revoked, so its history is kept)."""
    _revoke(session, prefix, request)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{prefix}/revoke", response_model=KeyOut)
def revoke_key(prefix: KeyPrefix, _: AdminKey, session: SessionDep, request: Request) -> KeyOut:
    return key_out(_revoke(session, prefix, request))


def _find(session, prefix: str) -> ApiKey:
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix[:32]))
    if row is None:
        raise NotFound(f"no API key with prefix {prefix[:32]!r}")
    return row


def _revoke(session, prefix: str, request: Request) -> ApiKey:
    row = _find(session, prefix)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        end_sessions_of_key(session, row.id)  # its browsers are signed out with it
        session.commit()
    # refused at once by this process; other API processes drop it from their caches within 30 s
    request.app.state.auth.forget(row.key_hash)
    return row
