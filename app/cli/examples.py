"""`dlserve examples write DIR`: the files the README and docs/quickstart use (app/examples.py makes them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Example files to try dlserve with: what the README and the quickstarts use.",
                  no_args_is_help=True)


@app.command("write")
def write(folder: Annotated[Path, typer.Argument(help="where to write them (created if missing)")]) -> None:
    """Write a tiny ONNX classifier, a small dataset per family and an input per family into FOLDER."""
    from app import examples

    for path in examples.write(folder).values():
        typer.echo(f"{path}  ({path.stat().st_size} bytes)")
