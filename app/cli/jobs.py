"""`dlserve train` and `dlserve jobs ...`: submit training, list, show, follow, cancel, metric history, log, tag."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from app.cli import DefaultGroup
from app.cli.api import (
    Api,
    AsJson,
    CliError,
    Key,
    Profile,
    Url,
    check,
    fields,
    fmt,
    parse_pairs,
    print_json,
    table,
    when,
)
from app.cli.datasets import summary as dataset_summary
from app.cli.datasets import upload_dataset

TERMINAL = ("succeeded", "failed", "cancelled")
app = typer.Typer(cls=DefaultGroup, help="Training jobs: list, show, follow, cancel, metrics, log, tag.")


def train(
    task: Annotated[str, typer.Option(help="classification, detection, captioning, translation, recommendation, "
                                      "fraud")],
    dataset: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="the data file to upload")],
    config: Annotated[list[str], typer.Option("--config", "-c", help="key=value, repeatable")] = [],  # noqa: B006
    format: Annotated[str | None, typer.Option(help="dataset format (default: from the file name)")] = None,
    name: Annotated[str | None, typer.Option(help="model name to register (default: <task>-<job>)")] = None,
    alias: Annotated[str | None, typer.Option(help="alias to point at the new version, e.g. production")] = None,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", help="wait for the job, with a progress bar")]
    = True,
    as_json: AsJson = False, url: Url = None, key: Key = None, profile: Profile = None,
) -> None:
    """Upload a dataset, submit a training job and follow it until it ends (exit 1 if it fails)."""
    cfg = parse_pairs(config, "--config")
    api = Api(url, key, profile)
    ds = upload_dataset(api, dataset, task, format, None)
    if not as_json:
        typer.echo(f"dataset {ds['id']}: {dataset_summary(ds)}")
    body = {"task": task, "dataset_id": ds["id"], "config": cfg, "register_as": name, "alias": alias}
    job = api.call("POST", "/v1/jobs", json=body)
    if not as_json:
        typer.echo(f"job {job['id']} queued")
    if follow:
        job = _follow(api, job["id"], quiet=as_json)
    if as_json:
        print_json({"dataset": ds, "job": job})
    if follow and job["status"] != "succeeded":
        raise typer.Exit(1)


@app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, failed, cancelled")] = None,
    task: Annotated[str | None, typer.Option(help="only this task")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20, offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: AsJson = False, url: Url = None, key: Key = None, profile: Profile = None,
) -> None:
    """List training jobs, newest first."""
    params = {k: v for k, v in {"status": status, "task": task, "limit": limit, "offset": offset}.items()
              if v is not None}
    page = Api(url, key, profile).call("GET", "/v1/jobs", params=params)
    if as_json:
        return print_json(page)
    rows = []
    for j in page["items"]:
        frac = (j.get("progress") or {}).get("fraction")
        mv = j.get("model_version")
        model = f"{mv['name']}:{mv['version']}" if mv else (j.get("register_as") or "")
        rows.append((j["id"], j["status"], j["task"], f"{frac:.0%}" if isinstance(frac, int | float) else "-",
                     model, when(j["created_at"])))
    table(("ID", "STATUS", "TASK", "PROGRESS", "MODEL", "CREATED"), rows,
          f"{len(page['items'])} of {page['total']}")


@app.command("show")
def show(job_id: str, as_json: AsJson = False, url: Url = None, key: Key = None, profile: Profile = None) -> None:
    """Show one job: status, progress, latest metrics, the model it registered."""
    job = Api(url, key, profile).call("GET", f"/v1/jobs/{job_id}")
    print_json(job) if as_json else describe(job)


@app.command("follow")
def follow(job_id: str, as_json: AsJson = False, url: Url = None, key: Key = None,
           profile: Profile = None) -> None:
    """Follow a job with a progress bar until it ends; exit 1 unless it succeeded."""
    final = _follow(Api(url, key, profile), job_id, quiet=as_json)
    if as_json:
        print_json(final)
    if final["status"] != "succeeded":
        raise typer.Exit(1)


@app.command("cancel")
def cancel(job_id: str, as_json: AsJson = False, url: Url = None, key: Key = None,
           profile: Profile = None) -> None:
    """Cancel a queued or running job (a running one stops at its next step)."""
    job = Api(url, key, profile).call("POST", f"/v1/jobs/{job_id}/cancel")
    print_json(job) if as_json else typer.echo(f"job {job['id']} {job['status']}"
                                               + (" (cancel requested)" if job.get("cancel_requested") else ""))


@app.command("metrics")
def metrics(
    job_id: str, metric: Annotated[str | None, typer.Option("--metric", help="only this metric, e.g. loss")] = None,
    as_json: AsJson = False, url: Url = None, key: Key = None, profile: Profile = None,
) -> None:
    """The metric history of a job (one row per recorded step)."""
    params = {"key": metric} if metric else None
    hist = Api(url, key, profile).call("GET", f"/v1/jobs/{job_id}/metrics", params=params)
    if as_json:
        return print_json(hist)
    table(("METRIC", "STEP", "EPOCH", "VALUE"), ((m["key"], m["step"], m["epoch"], m["value"])
                                                 for m in hist["items"]))


@app.command("tag")
def tag(
    job_id: str,
    tags: Annotated[list[str] | None, typer.Option("--tag", "-t", help="a tag, repeatable: they replace the job's; "
                                                   "--tag '' clears them")] = None,
    note: Annotated[str | None, typer.Option(help="a free-text note ('' clears it)")] = None,
    as_json: AsJson = False, url: Url = None, key: Key = None, profile: Profile = None,
) -> None:
    """Set a job's tags and note (find them again with the API's ?tag= and ?q=)."""
    body: dict[str, Any] = {}
    if tags is not None:
        body["tags"] = [t for t in tags if t]
    if note is not None:
        body["note"] = note
    job = Api(url, key, profile).call("PATCH", f"/v1/jobs/{job_id}", json=body)
    print_json(job) if as_json else typer.echo(f"job {job['id']}: tags {', '.join(job['tags']) or 'none'}"
                                               + (f"; note {job['note']!r}" if job.get("note") else ""))


@app.command("log")
def log(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new lines until the job ends")] = False,
    url: Url = None, key: Key = None, profile: Profile = None,
) -> None:
    """Print a job's log (its worker's lines, kept by the server: the head and the tail of a long one)."""
    api, offset = Api(url, key, profile), 0
    while True:
        try:
            r = api.http.get(f"/v1/jobs/{job_id}/log", params={"offset": offset})
        except httpx.TransportError as e:
            raise CliError(f"cannot reach {api.url}: {e or type(e).__name__}") from None
        check(r, "GET", f"/v1/jobs/{job_id}/log")
        if r.text:
            typer.echo(r.text, nl=False)
        offset = int(r.headers.get("x-log-offset", offset))
        if not follow or r.headers.get("x-log-complete") == "true":
            return
        time.sleep(1)


def describe(job: dict[str, Any]) -> None:
    p = job.get("progress") or {}
    mv = job.get("model_version")
    rows = [("job", job["id"]), ("status", job["status"]), ("task", job["task"]),
            ("dataset", job.get("dataset_name") or job.get("dataset_id") or "-"),
            ("model", f"{mv['name']} version {mv['version']}" if mv else job.get("register_as") or "-"),
            ("progress", f"epoch {fmt(p.get('epoch'))}/{fmt(p.get('epochs'))}, step {fmt(p.get('step'))}/"
                         f"{fmt(p.get('total'))}" if p else "-"),
            ("config", job.get("config") or {}), ("created", when(job.get("created_at"))),
            ("finished", when(job.get("finished_at")))]
    if job.get("tags") or job.get("note"):
        rows += [("tags", ", ".join(job.get("tags") or []) or "-"), ("note", job.get("note") or "-")]
    if job.get("error"):
        rows.append(("error", job["error"]))
    rows += [(k, v) for k, v in sorted((job.get("metrics") or {}).items())]
    fields(rows)


def _follow(api: Api, job_id: str, quiet: bool = False) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from app.cli.api import console

    first = api.call("GET", f"/v1/jobs/{job_id}")  # a wrong id fails here, before any progress bar
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[steps]}"),
               TimeRemainingColumn())
    with Progress(*columns, console=console(stderr=True), transient=False, disable=quiet) as bar:
        task = bar.add_task(first["status"], total=None, steps="")
        state = first
        for state in _states(api, job_id) if first["status"] not in TERMINAL else [first]:
            p = state.get("progress") or {}
            loss = (state.get("metrics") or {}).get("loss")
            desc = state["status"] if state["status"] != "running" else \
                f"epoch {fmt(p.get('epoch'))}/{fmt(p.get('epochs'))}" + (f" loss {fmt(loss)}" if loss is not None
                                                                          else "")
            total, step = p.get("total"), p.get("step")
            total = total if isinstance(total, int) else None
            step = step if isinstance(step, int) else 0
            bar.update(task, description=desc, total=total, completed=step,
                       steps=f"{step}/{total} steps" if total else "")
            if state["status"] in TERMINAL:
                break
    if not quiet:
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
    for k, v in sorted((state.get("metrics") or {}).items()):
        if k.startswith("val_"):
            typer.echo(f"  {k} {fmt(v)}")
