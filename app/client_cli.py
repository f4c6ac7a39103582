"""The HTTP client half of `dlserve`: train, jobs, models, predict. It only talks to the API (URL and key
from --url/--key or DLSERVE_URL/DLSERVE_KEY), so it works the same against a remote deployment."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

TERMINAL = ("succeeded", "failed", "cancelled")
Url = Annotated[str, typer.Option("--url", envvar="DLSERVE_URL", help="the dlserve API")]
Key = Annotated[str | None, typer.Option("--key", envvar="DLSERVE_KEY", show_default=False,
                                         help="API key (default: the local admin key of `make run`)")]
AsJson = Annotated[bool, typer.Option("--json", help="print the raw JSON")]
DEFAULT_URL = "http://127.0.0.1:8000"


class Api:
    def __init__(self, url: str, key: str | None):
        key = key or _local_key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=httpx.Timeout(60, read=600))

    def call(self, method: str, path: str, **kw) -> Any:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.TransportError as e:
            _die(f"cannot reach {self.http.base_url}: {e}")
        if r.status_code >= 400:
            try:
                body = r.json()
                detail = body.get("detail", r.text)
            except ValueError:
                detail = r.text
            retry = f" (retry after {r.headers['Retry-After']} s)" if "Retry-After" in r.headers else ""
            _die(f"{method} {path}: {r.status_code} {detail}{retry}")
        return r.json() if r.content else None


def _local_key() -> str | None:
    path = Path(os.environ.get("DLSERVE_HOME", "var")) / "admin.key"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _die(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _parse_config(pairs: list[str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--config")
        try:
            config[key.strip()] = json.loads(value)  # numbers, true/false, null, lists
        except json.JSONDecodeError:
            config[key.strip()] = value
    return config


def train(
    task: Annotated[str, typer.Option(help="classification, detection, ...")],
    dataset: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="the data file to upload")],
    config: Annotated[list[str], typer.Option("--config", "-c", help="key=value, repeatable")] = [],  # noqa: B006
    format: Annotated[str | None, typer.Option(help="dataset format (default: from the file name)")] = None,
    name: Annotated[str | None, typer.Option(help="model name to register (default: <task>-<job>)")] = None,
    alias: Annotated[str | None, typer.Option(help="alias to point at the new version, e.g. production")] = None,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", help="wait for the job, with a progress bar")]
    = True,
    url: Url = DEFAULT_URL, key: Key = None,
) -> None:
    """Upload a dataset, submit a training job and follow it until it ends."""
    api = Api(url, key)
    cfg = _parse_config(config)
    fields = {"task": task, **({"format": format} if format else {})}
    with open(dataset, "rb") as f:
        ds = api.call("POST", "/v1/datasets", data=fields, files={"file": (dataset.name, f)})
    stats = ds.get("stats", {})
    typer.echo(f"dataset {ds['id']}: {stats.get('rows', '?')} rows, {stats.get('classes', '?')} classes")
    body = {"task": task, "dataset_id": ds["id"], "config": cfg, "register_as": name, "alias": alias}
    job = api.call("POST", "/v1/jobs", json=body)
    typer.echo(f"job {job['id']} queued")
    if follow:
        final = _follow(api, job["id"])
        raise typer.Exit(0 if final["status"] == "succeeded" else 1)


def _follow(api: Api, job_id: str) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
               TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("queued", total=None)
        for state in _states(api, job_id):
            p = state.get("progress") or {}
            loss = (state.get("metrics") or {}).get("loss")
            desc = state["status"] if state["status"] != "running" else \
                f"epoch {p.get('epoch', 0):.2f}/{p.get('epochs', '?')}" + (f" loss {loss:.4f}" if loss else "")
            bar.update(task, description=desc, total=p.get("total"), completed=p.get("step") or 0)
            if state["status"] in TERMINAL:
                break
    _summary(state)
    return state


def _states(api: Api, job_id: str):
    """Job states from the server-sent events, falling back to polling if the stream breaks."""
    try:
        with api.http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(30, read=None)) as r:
            if r.status_code == 200:
                event = None
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event in ("progress", "end"):
                        yield json.loads(line[5:])
                        if event == "end":
                            return
    except httpx.TransportError:
        pass
    while True:
        state = api.call("GET", f"/v1/jobs/{job_id}")
        yield state
        if state["status"] in TERMINAL:
            return
        time.sleep(2)


def _summary(state: dict[str, Any]) -> None:
    typer.echo(f"job {state['id']} {state['status']}")
    if state.get("error"):
        typer.echo(f"  error: {state['error']}", err=True)
    mv = state.get("model_version")
    if mv:
        typer.echo(f"  model {mv['name']} version {mv['version']}")
    metrics = {k: v for k, v in (state.get("metrics") or {}).items() if k.startswith("val_")}
    if metrics:
        typer.echo("  " + "  ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())))


def jobs(
    job_id: Annotated[str | None, typer.Argument(help="one job to show (default: list them)")] = None,
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, failed, cancelled")] = None,
    task: str | None = None, limit: int = 20,
    cancel: Annotated[bool, typer.Option("--cancel", help="cancel JOB_ID")] = False,
    follow: Annotated[bool, typer.Option("--follow", help="follow JOB_ID until it ends")] = False,
    as_json: AsJson = False, url: Url = DEFAULT_URL, key: Key = None,
) -> None:
    """List training jobs, or show, follow or cancel one."""
    api = Api(url, key)
    if job_id:
        if follow:
            final = _follow(api, job_id)
            raise typer.Exit(0 if final["status"] == "succeeded" else 1)
        job = api.call("POST", f"/v1/jobs/{job_id}/cancel") if cancel else api.call("GET", f"/v1/jobs/{job_id}")
        typer.echo(json.dumps(job, indent=2))
        return
    params = {k: v for k, v in {"status": status, "task": task, "limit": limit}.items() if v is not None}
    page = api.call("GET", "/v1/jobs", params=params)
    if as_json:
        typer.echo(json.dumps(page, indent=2))
        return
    typer.echo(f"{'ID':32}  {'STATUS':9}  {'TASK':14}  {'PROGRESS':8}  {'MODEL':24}  CREATED")
    for j in page["items"]:
        frac = (j.get("progress") or {}).get("fraction")
        mv = j.get("model_version")
        model = f"{mv['name']}:{mv['version']}" if mv else (j.get("register_as") or "")
        progress = f"{frac:.0%}" if frac is not None else "-"
        typer.echo(f"{j['id']:32}  {j['status']:9}  {j['task']:14}  {progress:8}  {model:24}  {j['created_at'][:19]}")
    typer.echo(f"({len(page['items'])} of {page['total']})")


def models(
    name: Annotated[str | None, typer.Argument(help="one model to show (default: list them)")] = None,
    as_json: AsJson = False, url: Url = DEFAULT_URL, key: Key = None,
) -> None:
    """List registered models, or show one with its versions."""
    api = Api(url, key)
    if name:
        typer.echo(json.dumps(api.call("GET", f"/v1/models/{name}"), indent=2))
        return
    listed = api.call("GET", "/v1/models")
    if as_json:
        typer.echo(json.dumps(listed, indent=2))
        return
    typer.echo(f"{'NAME':32}  {'TASK':14}  {'LATEST':6}  ALIASES")
    for m in listed:
        aliases = ", ".join(f"{a}={v}" for a, v in sorted(m["aliases"].items()))
        typer.echo(f"{m['name']:32}  {m['task']:14}  {m['latest_version']:<6}  {aliases}")


def predict(
    model: Annotated[str, typer.Argument(help="model name")],
    inputs: Annotated[list[Path], typer.Argument(help="image files, or one .json request body ('-': stdin)")],
    version: Annotated[int | None, typer.Option(help="a version number (default: the production alias)")] = None,
    url: Url = DEFAULT_URL, key: Key = None,
) -> None:
    """Send inputs to POST /v1/models/MODEL/predict and print the response."""
    api = Api(url, key)
    if len(inputs) == 1 and (str(inputs[0]) == "-" or inputs[0].suffix.lower() == ".json"):
        text = sys.stdin.read() if str(inputs[0]) == "-" else inputs[0].read_text()
        body = json.loads(text)
    else:
        body = {"inputs": [{"image": base64.b64encode(p.read_bytes()).decode()} for p in inputs]}
    params = {"version": version} if version is not None else None
    typer.echo(json.dumps(api.call("POST", f"/v1/models/{model}/predict", json=body, params=params), indent=2))


def register(cli: typer.Typer) -> None:
    cli.command("train")(train)
    cli.command("jobs")(jobs)
    cli.command("models")(models)
    cli.command("predict")(predict)
