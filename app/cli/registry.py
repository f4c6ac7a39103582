"""`dlserve models|versions|aliases ...`: the model registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli import DefaultGroup
from app.cli.api import (
    Api,
    AsJson,
    CliError,
    Key,
    Profile,
    Url,
    fields,
    fmt,
    print_json,
    size,
    table,
    upload_progress,
    when,
)
from app.cli.jobs import _follow

models_app = typer.Typer(cls=DefaultGroup, help="Registered models: list, show.")
versions_app = typer.Typer(cls=DefaultGroup, help="Model versions: upload an .onnx, show, quantize, delete.")
aliases_app = typer.Typer(help="Aliases such as production: set, remove.", no_args_is_help=True)


def _aliases(m: dict[str, Any]) -> str:
    return ", ".join(f"{a}={v}" for a, v in sorted((m.get("aliases") or {}).items())) or "-"


def _metrics(metrics: dict[str, Any], limit: int = 3) -> str:
    val = sorted((k, v) for k, v in metrics.items() if k.startswith("val_") and isinstance(v, int | float))
    return ", ".join(f"{k[4:]} {fmt(v)}" for k, v in val[:limit]) or "-"


@models_app.command("list")
def list_models(as_json: AsJson = False, url: Url = None, key: Key = None, profile: Profile = None) -> None:
    """List registered models with their latest version and aliases."""
    listed = Api(url, key, profile).call("GET", "/v1/models")
    if as_json:
        return print_json(listed)
    table(("NAME", "TASK", "LATEST", "VERSIONS", "ALIASES", "UPDATED"),
          ((m["name"], m["task"], m["latest_version"], m["version_count"], _aliases(m), when(m["updated_at"]))
           for m in listed))


@models_app.command("show")
def show_model(name: str, as_json: AsJson = False, url: Url = None, key: Key = None,
               profile: Profile = None) -> None:
    """Show a model: its task, aliases and a table of its versions."""
    m = Api(url, key, profile).call("GET", f"/v1/models/{name}")
    if as_json:
        return print_json(m)
    fields([("model", m["name"]), ("task", m["task"]), ("aliases", _aliases(m)),
            ("latest", m["latest_version"]), ("created", when(m["created_at"]))])
    typer.echo("")
    table(("VERSION", "STATUS", "ALIASES", "SIZE", "METRICS", "CREATED"),
          ((v["version"], v["status"], ", ".join(v.get("aliases") or []) or "-", size(v["size_bytes"]),
            _metrics(v.get("metrics") or {}), when(v["created_at"])) for v in m.get("versions") or []))


@versions_app.command("show")
def show_version(name: str, version: int, as_json: AsJson = False, url: Url = None, key: Key = None,
                 profile: Profile = None) -> None:
    """Show one version: its tensors, metrics, metadata keys and where it came from."""
    v = Api(url, key, profile).call("GET", f"/v1/models/{name}/versions/{version}")
    if as_json:
        return print_json(v)

    def tensors(specs: list[dict[str, Any]]) -> str:
        return ", ".join(f"{t['name']} {t['datatype']}{t['shape']}" for t in specs) or "-"

    fields([("model", v["name"]), ("version", v["version"]), ("task", v["task"]), ("status", v["status"]),
            ("aliases", ", ".join(v.get("aliases") or []) or "-"), ("size", size(v["size_bytes"])),
            ("sha256", v["sha256"]), ("inputs", tensors(v.get("inputs") or [])),
            ("outputs", tensors(v.get("outputs") or [])), ("job", v.get("run_id") or "-"),
            ("dataset", v.get("dataset_id") or "-"), ("metadata", ", ".join(sorted(v.get("metadata") or {})) or "-"),
            ("created", when(v["created_at"]))] + sorted((v.get("metrics") or {}).items()))


@versions_app.command("upload")
def upload_version(
    name: Annotated[str, typer.Argument(help="the model name (created on its first version)")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a self-contained .onnx file")],
    task: Annotated[str, typer.Option(help="classification, detection, captioning, translation, ...")],
    metadata: Annotated[str | None, typer.Option(help="JSON object (labels, preprocessing...) or @file.json")]
    = None,
    alias: Annotated[str | None, typer.Option(help="point this alias (e.g. production) at the new version")] = None,
    as_json: AsJson = False, url: Url = None, key: Key = None, profile: Profile = None,
) -> None:
    """Register an .onnx file as the model's next version."""
    if metadata and metadata.startswith("@"):
        try:
            metadata = Path(metadata[1:]).read_text()
        except OSError as e:
            raise CliError(f"cannot read {metadata[1:]}: {e.strerror or e}") from None
    if metadata:
        try:
            json.loads(metadata)
        except json.JSONDecodeError as e:
            raise typer.BadParameter(f"not JSON: {e}", param_hint="--metadata") from None
    api = Api(url, key, profile)
    data = {"task": task, **({"metadata": metadata} if metadata else {})}
    with upload_progress(file) as f:
        v = api.call("POST", f"/v1/models/{name}/versions", data=data, files={"file": (file.name, f)})
    if alias:
        api.call("PUT", f"/v1/models/{name}/aliases/{alias}", json={"version": v["version"]})
        v["aliases"] = sorted({*v.get("aliases", []), alias})
    if as_json:
        return print_json(v)
    typer.echo(f"registered {v['name']} version {v['version']} ({v['task']}, {size(v['size_bytes'])})"
               + (f"; {alias} -> {v['version']}" if alias else ""))


@versions_app.command("quantize")
def quantize_version(
    name: str, version: int,
    method: Annotated[str, typer.Option(help="auto (each method the family tries, measured), static or dynamic")]
    = "auto",
    batches: Annotated[int, typer.Option(min=1, max=1000, help="calibration batches of the training split")] = 16,
    batch_size: Annotated[int, typer.Option(min=1, max=1024, help="rows per calibration batch")] = 32,
    tolerance: Annotated[float | None, typer.Option(min=0, help="a stricter gate than the family's")] = None,
    alias: Annotated[str | None, typer.Option(help="point this alias at the int8 version once registered")] = None,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", help="wait for the job")] = True,
    as_json: AsJson = False, url: Url = None, key: Key = None, profile: Profile = None,
) -> None:
    """Make an int8 version of VERSION with ONNX Runtime, registered only when it keeps the family's metric
    within its tolerance on the held-out split (exit 1 when refused). docs/quantisation.md"""
    api = Api(url, key, profile)
    body = {"method": method, "calibration_batches": batches, "batch_size": batch_size, "tolerance": tolerance,
            "alias": alias}
    job = api.call("POST", f"/v1/models/{name}/versions/{version}/quantize", json=body)
    if not as_json:
        typer.echo(f"job {job['id']} queued: int8 of {name} version {version}")
    if follow:
        job = _follow(api, job["id"], quiet=as_json)
        done = job.get("model_version")
        if done and not as_json:
            v = api.call("GET", f"/v1/models/{done['name']}/versions/{done['version']}")
            p = v["metadata"]["quantisation"]["parity"]
            typer.echo(f"  {v['metadata']['quantisation']['method']}: {p['metric']} {fmt(p['int8'])} against "
                       f"{fmt(p['parent'])}, {fmt(p['int8_ms_per_batch'])} ms per batch against "
                       f"{fmt(p['parent_ms_per_batch'])}")
    if as_json:
        print_json(job)
    if follow and job["status"] != "succeeded":
        raise typer.Exit(1)


@versions_app.command("delete")
def delete_version(name: str, version: int, as_json: AsJson = False, url: Url = None, key: Key = None,
                   profile: Profile = None) -> None:
    """Delete a version (refused while an alias points at it)."""
    Api(url, key, profile).call("DELETE", f"/v1/models/{name}/versions/{version}")
    print_json({"deleted": {"name": name, "version": version}}) if as_json else \
        typer.echo(f"deleted {name} version {version}")


@aliases_app.command("set")
def set_alias(name: str, alias: str, version: int, as_json: AsJson = False, url: Url = None, key: Key = None,
              profile: Profile = None) -> None:
    """Point ALIAS of model NAME at VERSION (serving follows within a second)."""
    a = Api(url, key, profile).call("PUT", f"/v1/models/{name}/aliases/{alias}", json={"version": version})
    print_json(a) if as_json else typer.echo(f"{a['name']}: {a['alias']} -> version {a['version']}")


@aliases_app.command("remove")
def remove_alias(name: str, alias: str, as_json: AsJson = False, url: Url = None, key: Key = None,
                 profile: Profile = None) -> None:
    """Remove ALIAS from model NAME."""
    Api(url, key, profile).call("DELETE", f"/v1/models/{name}/aliases/{alias}")
    print_json({"removed": {"name": name, "alias": alias}}) if as_json else \
        typer.echo(f"{name}: removed alias {alias}")


@aliases_app.command("history")
def alias_history(name: str, alias: str, limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
                  as_json: AsJson = False, url: Url = None, key: Key = None, profile: Profile = None) -> None:
    """Where ALIAS of model NAME pointed over time, newest first, and who moved it."""
    h = Api(url, key, profile).call("GET", f"/v1/models/{name}/aliases/{alias}/history", params={"limit": limit})
    if as_json:
        return print_json(h)
    table(("WHEN", "FROM", "TO", "BY"), ((when(e["at"]), fmt(e["from_version"]), fmt(e["to_version"]), e["actor"])
                                        for e in h["items"]),
          f"{name}: {alias} -> {fmt(h['version'])} now; {h['total']} move(s)")


@aliases_app.command("rollback")
def rollback_alias(name: str, alias: str, as_json: AsJson = False, url: Url = None, key: Key = None,
                   profile: Profile = None) -> None:
    """Point ALIAS of model NAME back at the version it pointed at before its last move."""
    a = Api(url, key, profile).call("POST", f"/v1/models/{name}/aliases/{alias}/rollback")
    print_json(a) if as_json else typer.echo(f"{a['name']}: {a['alias']} -> version {a['version']}")
