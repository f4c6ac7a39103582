"""`dlserve store sweep`: on a server's machine (it reads the database and the artifact store directly)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.db.session import make_engine, make_sessionmaker
from app.settings import Settings
from app.store import open_store
from app.store.sweep import sweep

app = typer.Typer(help="The artifact store (a folder or an S3 bucket); on the server's machine.", no_args_is_help=True)


@app.command("sweep")
def sweep_command(
    grace_s: Annotated[float | None, typer.Option("--grace-s", min=0, help="leave objects younger than this "
                                                  "(default: DLSERVE_STORE_SWEEP_GRACE_S)")] = None,
) -> None:
    """Remove objects no dataset, model version or live run owns, and abort stale multipart uploads."""
    settings = Settings()
    store = open_store(settings)
    engine = make_engine(settings.resolved_database_url)
    try:
        report = sweep(store.objects, make_sessionmaker(engine),
                       settings.store_sweep_grace_s if grace_s is None else grace_s)
    finally:
        engine.dispose()
    typer.echo(f"{store.uri}: removed {len(report.removed)} stray object(s), aborted {len(report.aborted)} "
               f"multipart upload(s), kept {report.kept}")
    for key in report.removed:
        typer.echo(f"  removed {key}")
