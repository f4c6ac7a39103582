"""`dlserve keys ...`: API keys over HTTP (an admin key; from any machine), or with --local straight in the
server's database (bootstrapping: on the server's machine, with its DLSERVE_HOME or DLSERVE_DATABASE_URL)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from app.cli import DefaultGroup
from app.cli.api import Api, AsJson, CliError, Key, Profile, Url, print_json, table, when

app = typer.Typer(cls=DefaultGroup, help="API keys: create, list, revoke (admin scope).")
SCOPES_HELP = "comma-separated: read (sees everything, changes nothing), predict, train, admin"
Local = Annotated[bool, typer.Option("--local", help="use the server's database directly (on its machine)")]
DURATION = re.compile(r"^(\d+)\s*([smhdw]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _duration(text: str) -> int:
    m = DURATION.match(text.strip().lower())
    if not m or int(m[1]) == 0:
        raise typer.BadParameter(f"{text!r} is not a duration like 3600, 90m, 12h, 30d or 2w",
                                 param_hint="--expires-in")
    return int(m[1]) * UNITS[m[2]]


@app.command("create")
def create(
    scopes: Annotated[str, typer.Option(help=SCOPES_HELP)] = "predict",
    name: Annotated[str | None, typer.Option(help="a label to recognise the key by")] = None,
    expires_in: Annotated[str | None, typer.Option(help="lifetime: 3600, 90m, 12h, 30d, 2w")] = None,
    expires_at: Annotated[datetime | None, typer.Option(help="or: an ISO date/time (UTC unless it says)")] = None,
    local: Local = False, as_json: AsJson = False, url: Url = None, key: Key = None, profile: Profile = None,
) -> None:
    """Create a key and print it: this is the only time the secret is shown (it is stored hashed)."""
    from app.auth import parse_scopes  # the scope list lives with the server; no database is touched

    try:
        scope_list = parse_scopes(scopes)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--scopes") from None
    if expires_in and expires_at:
        raise typer.BadParameter("give --expires-in or --expires-at, not both", param_hint="--expires-at")
    body: dict[str, Any] = {"scopes": scope_list, "name": name}
    if expires_in:
        body["expires_in_s"] = _duration(expires_in)
    if expires_at:
        body["expires_at"] = (expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)).isoformat()
    made = _local_create(body) if local else Api(url, key, profile).call("POST", "/v1/keys", json=body)
    if as_json:
        return print_json(made)
    typer.echo(made["key"])
    typer.echo(f"key {made['prefix']} ({','.join(made['scopes'])}"
               + (f", expires {when(made['expires_at'])} UTC" if made.get("expires_at") else "")
               + "): copy it now, it is not shown again", err=True)


@app.command("list")
def list_keys(local: Local = False, as_json: AsJson = False, url: Url = None, key: Key = None,
              profile: Profile = None) -> None:
    """List keys (prefix, scopes, state, expiry, last use); never the secrets."""
    page = _local_list() if local else Api(url, key, profile).call("GET", "/v1/keys", params={"limit": 500})
    if as_json:
        return print_json(page)
    table(("PREFIX", "NAME", "SCOPES", "STATE", "EXPIRES", "LAST USED", "CREATED"),
          ((k["prefix"], k.get("name") or "-", ",".join(k["scopes"]), k["state"], when(k.get("expires_at")),
            when(k.get("last_used_at")) if k.get("last_used_at") else "never", when(k["created_at"]))
           for k in page["items"]), f"{len(page['items'])} of {page['total']}")


@app.command("revoke")
def revoke(prefix: Annotated[str, typer.Argument(help="the part after 'dls_' (see `dlserve keys list`)")],
           local: Local = False, as_json: AsJson = False, url: Url = None, key: Key = None,
           profile: Profile = None) -> None:
    """Revoke a key: refused at once by the server that revoked it, by every other within 30 s."""
    k = _local_revoke(prefix) if local else Api(url, key, profile).call("POST", f"/v1/keys/{prefix}/revoke")
    print_json(k) if as_json else typer.echo(f"revoked {k['prefix']}")


def _sessions():
    """The server's database, or a one-line error saying why this machine cannot reach it."""
    from sqlalchemy import inspect

    from app.db.session import make_engine, make_sessionmaker
    from app.settings import Settings

    settings = Settings()
    url = settings.resolved_database_url
    if url.startswith("sqlite:///") and not settings.database_url and not (settings.home / "dlserve.db").exists():
        raise CliError(f"no dlserve database in {settings.home.resolve()}: --local works on the server's machine "
                       "(set DLSERVE_HOME or DLSERVE_DATABASE_URL as the server has them); elsewhere drop --local "
                       "and use an admin key (--key, DLSERVE_KEY or `dlserve login`)")
    engine = make_engine(url)
    try:
        if "api_keys" not in inspect(engine).get_table_names():
            raise CliError("the database has no api_keys table yet: run `dlserve db upgrade` first")
    except CliError:
        raise
    except Exception as e:
        raise CliError(f"cannot open the database ({type(e).__name__}): check DLSERVE_DATABASE_URL") from None
    return make_sessionmaker(engine)


def _local_create(body: dict[str, Any]) -> dict[str, Any]:
    from app.api.keys import key_out
    from app.auth import create_key

    expires = None
    if "expires_in_s" in body:
        expires = datetime.now(UTC) + timedelta(seconds=body["expires_in_s"])
    elif "expires_at" in body:
        expires = datetime.fromisoformat(body["expires_at"])
    with _sessions()() as session:
        row, secret = create_key(session, body["scopes"], body.get("name"), expires)
        session.commit()
        return {**key_out(row).model_dump(mode="json"), "key": secret}


def _local_list() -> dict[str, Any]:
    from sqlalchemy import select

    from app.api.keys import key_out
    from app.db.tables import ApiKey

    with _sessions()() as session:
        items = [key_out(k).model_dump(mode="json") for k in session.scalars(select(ApiKey).order_by(ApiKey.id))]
    return {"items": items, "total": len(items), "limit": len(items), "offset": 0}


def _local_revoke(prefix: str) -> dict[str, Any]:
    from sqlalchemy import select

    from app.api.keys import key_out
    from app.db.base import utcnow
    from app.db.tables import ApiKey

    with _sessions()() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if row is None:
            raise CliError(f"no key with prefix {prefix!r}")
        row.revoked_at = row.revoked_at or utcnow()
        session.commit()
        return key_out(row).model_dump(mode="json")
