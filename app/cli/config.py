"""Where the client commands find their server and key: flag > environment (DLSERVE_URL, DLSERVE_KEY,
DLSERVE_PROFILE) > the config file `dlserve login` writes ($XDG_CONFIG_HOME/dlserve/config.toml, else
~/.config/dlserve/config.toml; mode 0600, one [profiles.NAME] table per server)."""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_PROFILE = "default"
PROFILE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Target:
    url: str
    key: str | None
    profile: str | None  # the profile the url or key came from, if any


def path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dlserve" / "config.toml"


def load() -> dict[str, Any]:
    from app.cli.api import CliError

    p = path()
    try:
        with open(p, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CliError(f"cannot read {p}: {e}") from None


def resolve(url: str | None, key: str | None, profile: str | None) -> Target:
    """`url` and `key` come from the flag or the environment already (typer's envvar); the profile fills in
    what is missing. A profile's key goes only to that profile's server: `--url` naming another server
    does not receive it."""
    from app.cli.api import CliError

    data = load()
    profiles = data.get("profiles") or {}
    name = profile or data.get("default_profile") or DEFAULT_PROFILE
    entry = profiles.get(name)
    if profile and entry is None:
        raise CliError(f"no profile {profile!r} in {path()}; create it with `dlserve login --profile {profile}`")
    entry = entry or {}
    url = _norm(url or entry.get("url") or DEFAULT_URL)
    same_server = entry.get("url") and _norm(entry["url"]) == url
    if not key and same_server:
        key = entry.get("key")
    if not key and _is_local(url):
        key = local_admin_key()
    return Target(url, key or None, name if entry else None)


def _norm(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def _is_local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


def local_admin_key() -> str | None:
    """The key `make run` keeps in DLSERVE_HOME/admin.key: only ever sent to a server on this machine."""
    p = Path(os.environ.get("DLSERVE_HOME", "var")) / "admin.key"
    try:
        return p.read_text().strip() or None
    except OSError:
        return None


def save_profile(name: str, url: str, key: str, make_default: bool) -> Path:
    """Adds or replaces profile `name`; the file is written whole, 0600, in a 0700 folder."""
    from app.cli.api import CliError

    if not PROFILE_NAME.match(name):
        raise CliError(f"profile names are letters, digits, '-' and '_' (1-64 characters); got {name!r}")
    data = load()
    profiles = dict(data.get("profiles") or {})
    profiles[name] = {"url": _norm(url), "key": key}
    default = name if make_default or not data.get("default_profile") else data["default_profile"]
    lines = ["# written by `dlserve login`; holds API keys: keep it private (mode 0600)",
             f"default_profile = {json.dumps(default)}", ""]
    for pname in sorted(profiles):
        lines.append(f"[profiles.{pname}]")
        lines += [f"{k} = {json.dumps(str(v))}" for k, v in profiles[pname].items()]
        lines.append("")
    p = path()
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = p.with_name(f".{p.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines))
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover file
    os.replace(tmp, p)
    return p
