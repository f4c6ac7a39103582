"""The server half of `dlserve`: serve, worker, db. These run on the server's own machine.

`dlserve serve` is what `make run` calls: it migrates, makes sure a local admin key exists, runs
uvicorn and, on the file-system broker, one training worker beside it. `dlserve worker` runs a
training worker alone. The HTTP client commands are beside this module (app/cli/)."""

from __future__ import annotations

import os
import signal
import stat
from typing import Annotated

import typer

from app import private
from app.auth import bootstrap_admin_key
from app.db import migrate
from app.db.session import make_engine, make_sessionmaker
from app.metrics import start_multiprocess
from app.settings import Settings
from models import register_all

cli = typer.Typer()  # its commands are added to the root app in app/cli/__init__.py
db_cli = typer.Typer(help="Database migrations (Alembic); on the server's machine.", no_args_is_help=True)


def _sessions(settings: Settings):
    return make_sessionmaker(make_engine(settings.resolved_database_url))


@db_cli.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database to `revision` (default: the newest)."""
    settings = Settings()
    migrate.upgrade(settings.resolved_database_url, revision)
    typer.echo(f"database at {migrate.head_revision() if revision == 'head' else revision}")


@db_cli.command("current")
def db_current() -> None:
    """Print the database's migration revision and the code's head."""
    settings = Settings()
    current = migrate.current_revision(make_engine(settings.resolved_database_url))
    typer.echo(f"current: {current or 'none'}  head: {migrate.head_revision()}")


@cli.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="default: DLSERVE_HOST, else 127.0.0.1", show_default=False)] = None,
    port: Annotated[int | None, typer.Option(help="default: DLSERVE_PORT, else 8000", show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, max=256, help="API processes (default: DLSERVE_WORKERS, else 1); they share the model memory "
        "budget, and /metrics adds up their counts", show_default=False)] = None,
    migrate_first: Annotated[bool, typer.Option(
        "--migrate/--no-migrate", help="upgrade the database first (compose has a migrate service)")] = True,
    with_worker: Annotated[bool | None, typer.Option(
        "--worker/--no-worker", help="run a training worker beside the API (default: on the file-system broker)",
        show_default=False)] = None,
) -> None:
    """Migrate, make sure an admin key exists, and serve the API (and a training worker).

    Task families beyond the built-in six come from DLSERVE_FAMILIES (task=python.package pairs) and from
    the `dlserve.families` entry points of installed distributions; the setting wins on a task both name
    (docs/families.md). A family that cannot be loaded stops the start in one line."""
    import uvicorn

    from app.jobs.supervisor import WorkerSupervisor
    from app.server import PROTOCOLS, raise_open_files_limit

    settings = Settings()
    register_all(settings.families)  # a family that cannot load stops here, in one line, before migrating
    host, port = host or settings.host, port or settings.port
    workers = workers or settings.workers
    private.make_private(settings)
    if workers > 1:
        # Inherited by the worker processes: each takes its share of the memory budget, and writes its
        # metrics where a scrape of any of them adds them all up (app/metrics.py).
        os.environ["DLSERVE_WORKERS"] = str(workers)
        start_multiprocess(settings.metrics_dir)
    if migrate_first:
        migrate.upgrade(settings.resolved_database_url)
    private.make_private(settings)  # the database file the migration may just have created
    _announce_admin_key(settings, host, port)
    typer.echo(f"Dashboard: http://{host}:{port}/ (sign in with an API key); API docs: http://{host}:{port}/docs")
    raise_open_files_limit(settings.max_connections)
    supervisor = WorkerSupervisor() if (settings.uses_file_broker if with_worker is None else with_worker) else None
    if supervisor is not None:
        supervisor.start()
        # uvicorn re-raises the SIGTERM it caught once it has shut down; as an exception (not the
        # default handler's instant death) it lets the `finally` below stop the worker too.
        signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        # uvicorn's protocol for the chosen parser with the header deadline and connection cap added
        # (app/server.py). On SIGTERM uvicorn stops accepting and lets the requests in flight finish, for
        # up to shutdown_timeout_s.
        uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="info", access_log=settings.access_log, proxy_headers=False,
                    http=PROTOCOLS[settings.http_parser],
                    timeout_graceful_shutdown=settings.shutdown_timeout_s)
    finally:
        if supervisor is not None:
            supervisor.stop()


def _exit_on_signal(signum, _frame) -> None:
    raise SystemExit(128 + signum)


@cli.command("worker")
def worker(
    concurrency: Annotated[int, typer.Option(help="jobs at once (one per GPU)")] = 1,
    loglevel: str = "info",
    pool: Annotated[str, typer.Option(help="prefork (a process per job) or solo (in this process)")] = "prefork",
) -> None:
    """Run a training worker: consumes the training queue on the configured broker.

    It trains the families the API serves: give it the same DLSERVE_FAMILIES and installed distributions."""
    from workers.celery_app import app as celery_app
    from workers.celery_app import settings

    private.make_private(settings)
    celery_app.worker_main(["worker", "-Q", settings.queue, "--concurrency", str(concurrency), "--pool", pool,
                            "--loglevel", loglevel, "--hostname", f"dlserve-{os.getpid()}@%h",
                            "--without-gossip", "--without-mingle", "--without-heartbeat"])


def _announce_admin_key(settings: Settings, host: str, port: int) -> None:
    """Shows the local admin key once, when it is created; later starts say where it is kept, since a
    log is read by more people (and kept longer) than a 0600 file."""
    url = f"http://{host}:{port}"
    if settings.admin_key:
        typer.echo("Admin key: $DLSERVE_ADMIN_KEY")
        typer.echo(f'  curl -H "Authorization: Bearer $DLSERVE_ADMIN_KEY" {url}/v1/models')
        return
    path = settings.home / "admin.key"
    if path.exists():
        typer.echo(f"Admin key: kept in {path} (readable by this user only)")
        typer.echo(f"  curl -H \"Authorization: Bearer $(cat {path})\" {url}/v1/models")
        return
    with _sessions(settings)() as session:
        key = bootstrap_admin_key(session)
        session.commit()
    if key is None:  # another replica (or a start with another DLSERVE_HOME) made the database's admin key
        typer.echo("Admin key: the database has one already (made by another replica or an earlier start); "
                   "set DLSERVE_ADMIN_KEY, or make one on this machine: dlserve keys create --local --scopes admin")
        return
    # Written 0600 next to the database: the key is shown once, but a local user restarting
    # `make run` needs to find it again.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    typer.echo(f"Created a local admin key (kept in {path}; shown only this once): {key}")
    typer.echo(f"  curl -H 'Authorization: Bearer {key}' {url}/v1/models")
