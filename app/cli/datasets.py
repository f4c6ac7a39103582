"""`dlserve datasets ...`: upload, list, show, delete; and the summary of a dataset's stats, whatever its family
reports (each family's data module fills `stats` with its own counts)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli import DefaultGroup
from app.cli.api import Api, AsJson, Key, Profile, Url, fields, fmt, print_json, size, table, upload_progress, when

app = typer.Typer(cls=DefaultGroup, help="Datasets: upload, list, show, delete.")

# Counts in the order they read best; whatever else a family reports is shown by `datasets show`.
COUNTS = ("rows", "images", "ratings", "captions", "boxes", "users", "items", "classes", "categories", "frauds",
          "legitimate")


def summary(ds: dict[str, Any]) -> str:
    """One line from the dataset's stats, e.g. '1797 rows, 10 classes' or '2000 rows, 2 languages (en, fr)'."""
    stats = ds.get("stats") or {}
    parts = [f"{stats[k]} {k}" for k in COUNTS if isinstance(stats.get(k), int) and not isinstance(stats[k], bool)]
    parts += [f"{v} {k.replace('_', ' ')}" for k, v in stats.items()
              if k not in COUNTS and isinstance(v, int) and not isinstance(v, bool)
              and not k.endswith("_images") and not k.startswith(("max_", "min_"))]  # details: `datasets show`
    langs = stats.get("languages")
    if isinstance(langs, list) and langs:
        parts.append(f"languages {', '.join(map(str, langs))}")
    sizes = stats.get("image_sizes")
    if isinstance(sizes, dict) and isinstance(sizes.get("most_common"), list):
        parts.append("images mostly " + "x".join(map(str, sizes["most_common"])) + " px")
    if isinstance(stats.get("label_column"), str):
        parts.append(f"label column {stats['label_column']!r}")
    head = f"{ds.get('task', '?')} ({ds.get('format', '?')})"
    return head + (": " + ", ".join(parts) if parts else "")


def upload_dataset(api: Api, path: Path, task: str, format: str | None, name: str | None) -> dict[str, Any]:
    data = {"task": task, **({"format": format} if format else {}), **({"name": name} if name else {})}
    with upload_progress(path) as f:
        return api.call("POST", "/v1/datasets", data=data, files={"file": (path.name, f)})


@app.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the archive or data file")],
    task: Annotated[str, typer.Option(help="classification, detection, captioning, translation, recommendation, "
                                      "fraud, or a task family the server registers")],
    format: Annotated[str | None, typer.Option(help="dataset format (default: from the file name)")] = None,
    name: Annotated[str | None, typer.Option(help="a label (default: the file name)")] = None,
    as_json: AsJson = False, url: Url = None, key: Key = None, profile: Profile = None,
) -> None:
    """Upload and validate a dataset (the same bytes uploaded twice give the same dataset)."""
    ds = upload_dataset(Api(url, key, profile), file, task, format, name)
    print_json(ds) if as_json else typer.echo(f"dataset {ds['id']}: {summary(ds)}")


@app.command("list")
def list_datasets(
    task: Annotated[str | None, typer.Option(help="only this task")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50, offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: AsJson = False, url: Url = None, key: Key = None, profile: Profile = None,
) -> None:
    """List datasets, newest first."""
    params = {k: v for k, v in {"task": task, "limit": limit, "offset": offset}.items() if v is not None}
    page = Api(url, key, profile).call("GET", "/v1/datasets", params=params)
    if as_json:
        return print_json(page)
    table(("ID", "NAME", "TASK", "FORMAT", "SIZE", "SUMMARY", "CREATED"),
          ((d["id"], d["name"], d["task"], d["format"], size(d["size_bytes"]), summary(d).partition(": ")[2],
            when(d["created_at"])) for d in page["items"]),
          f"{len(page['items'])} of {page['total']}")


@app.command("show")
def show(dataset_id: str, as_json: AsJson = False, url: Url = None, key: Key = None,
         profile: Profile = None) -> None:
    """Show a dataset and every statistic its family reports."""
    d = Api(url, key, profile).call("GET", f"/v1/datasets/{dataset_id}")
    if as_json:
        return print_json(d)
    fields([("dataset", d["id"]), ("name", d["name"]), ("task", d["task"]), ("format", d["format"]),
            ("size", size(d["size_bytes"])), ("sha256", d["sha256"]), ("created", when(d["created_at"])),
            ("summary", summary(d).partition(": ")[2] or "-")]
           + [(k.replace("_", " "), fmt(v, 160)) for k, v in (d.get("stats") or {}).items()])


@app.command("delete")
def delete(dataset_id: str, as_json: AsJson = False, url: Url = None, key: Key = None,
           profile: Profile = None) -> None:
    """Delete a dataset (refused while a queued or running job needs it)."""
    Api(url, key, profile).call("DELETE", f"/v1/datasets/{dataset_id}")
    print_json({"deleted": dataset_id}) if as_json else typer.echo(f"deleted dataset {dataset_id}")
