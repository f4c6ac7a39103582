"""What every client command shares: the HTTP client, the one-line errors, and the output (a human table or
summary by default, `--json` for scripts). Imports only httpx, typer and rich: the client commands work
from `pip install dlserve` without torch or ONNX Runtime."""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from app.cli import config


class CliError(Exception):
    """A failure the user can act on: printed as one line, exit code `code`, no traceback."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


Url = Annotated[str | None, typer.Option(
    "--url", envvar="DLSERVE_URL", show_default=False,
    help="the dlserve API [default: the profile's, else http://127.0.0.1:8000]")]
Key = Annotated[str | None, typer.Option(
    "--key", envvar="DLSERVE_KEY", show_default=False,
    help="API key [default: the profile's; on this machine, the local admin key of `make run`]")]
Profile = Annotated[str | None, typer.Option(
    "--profile", envvar="DLSERVE_PROFILE", show_default=False, help="a profile saved by `dlserve login`")]
AsJson = Annotated[bool, typer.Option("--json", help="print the API's JSON answer instead of a summary")]


class Api:
    def __init__(self, url: str | None, key: str | None, profile: str | None = None):
        target = config.resolve(url, key, profile)
        self.url, self.profile = target.url, target.profile
        headers = {"Authorization": f"Bearer {target.key}"} if target.key else {}
        self.http = httpx.Client(base_url=target.url, headers=headers, timeout=httpx.Timeout(60, read=600))

    def call(self, method: str, path: str, **kw) -> Any:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise CliError(f"cannot reach {self.url}: {e or type(e).__name__}") from None
        check(r, method, path)
        return r.json() if r.content else None


def check(r: httpx.Response, method: str, path: str) -> None:
    if r.status_code < 400:
        return
    try:
        body = r.json()
        detail = f"{body.get('title') or r.reason_phrase}: {body.get('detail', '')}" if isinstance(body, dict) \
            else r.text
    except ValueError:
        detail = r.reason_phrase
    hint = ""
    if r.status_code == 401:
        hint = " (pass --key, set DLSERVE_KEY or run `dlserve login`)"
    elif "Retry-After" in r.headers:
        hint = f" (retry after {r.headers['Retry-After']} s)"
    raise CliError(f"{method} {path}: {r.status_code} {one_line(detail)}{hint}")


def one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fmt(value: Any, limit: int = 80) -> str:
    """Any value an API answer may hold (metrics are numbers, but also confusion matrices, lists, null)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(value) if math.isnan(value) or math.isinf(value) else f"{value:.4g}"
    if isinstance(value, str):
        return one_line(value, limit)
    return one_line(json.dumps(value, separators=(",", ":"), default=str), limit)


def size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def when(text: str | None) -> str:
    return text[:19].replace("T", " ") if text else "-"


def console(stderr: bool = False):
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:  # piped: wide enough that ids and names are never cut
        out = Console(stderr=stderr, highlight=False, width=max(out.width, 200))
    return out


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def table(headers: Iterable[str], rows: Iterable[Iterable[Any]], footer: str | None = None) -> None:
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for h in headers:
        t.add_column(h, overflow="fold")
    n = 0
    for row in rows:
        t.add_row(*(c if isinstance(c, str) else fmt(c) for c in row))
        n += 1
    out = console()
    if n:
        out.print(t)
    else:
        out.print("(none)")
    if footer:
        out.print(footer)


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """A record as aligned `name  value` lines."""
    pairs = list(pairs)
    width = max((len(k) for k, _ in pairs), default=0)
    for k, v in pairs:
        typer.echo(f"{k:<{width}}  {v if isinstance(v, str) else fmt(v, 160)}")


class _ProgressFile(io.BufferedReader):
    """A file whose reads move an upload progress bar (httpx streams multipart files by read())."""

    def __init__(self, path: Path, moved: Callable[[int], None]):
        super().__init__(io.FileIO(path, "rb"))
        self._moved = moved

    def read(self, n: int | None = -1) -> bytes:
        chunk = super().read(n)
        self._moved(self.tell())
        return chunk


@contextmanager
def upload_progress(path: Path):
    """Yields the file to hand to httpx; a rich progress bar on stderr follows its bytes."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    total = path.stat().st_size
    with Progress(TextColumn(f"uploading {path.name}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=console(stderr=True), transient=True) as bar:
        task = bar.add_task("upload", total=total)
        with _ProgressFile(path, lambda done: bar.update(task, completed=done)) as f:
            yield f


def read_input(path: str) -> bytes:
    """A file's bytes, or stdin's for '-'."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror or e}") from None


def parse_pairs(pairs: list[str], option: str) -> dict[str, Any]:
    """key=value options; values are JSON when they parse (numbers, true/false, lists), else strings."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint=option)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
