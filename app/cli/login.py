"""`dlserve login`: saves a server's URL and key as a profile, after checking the key works."""

from __future__ import annotations

from typing import Annotated

import httpx
import typer

from app.cli import config
from app.cli.api import AsJson, CliError, check, print_json


def login(
    url: Annotated[str, typer.Option("--url", envvar="DLSERVE_URL", prompt="Server URL",
                                     help="the dlserve API, e.g. https://dlserve.example.com")],
    key: Annotated[str, typer.Option("--key", envvar="DLSERVE_KEY", prompt="API key", hide_input=True,
                                     help="an API key (dls_...); prompted for, unseen, when not given")],
    profile: Annotated[str, typer.Option("--profile", envvar="DLSERVE_PROFILE",
                                         help="the profile name, one per server")] = config.DEFAULT_PROFILE,
    make_default: Annotated[bool, typer.Option("--default", help="use this profile when none is named")] = False,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="check the key against the server first")]
    = True,
    as_json: AsJson = False,
) -> None:
    """Save a server URL and API key in the config file (mode 0600) as a profile.

    Later commands use it when neither a flag nor DLSERVE_URL/DLSERVE_KEY says otherwise; --profile or
    DLSERVE_PROFILE picks one of several servers."""
    url = url.strip().rstrip("/")
    if verify:
        try:
            r = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key.strip()}"}, timeout=30)
        except httpx.HTTPError as e:
            raise CliError(f"cannot reach {url}: {e or type(e).__name__}") from None
        check(r, "GET", "/v1/models")
    where = config.save_profile(profile, url, key.strip(), make_default)
    if as_json:
        print_json({"profile": profile, "url": url, "config": str(where)})
    else:
        typer.echo(f"saved profile {profile!r} ({url}) in {where}")
