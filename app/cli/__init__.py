"""`dlserve`: the command line. Client commands talk to the API over HTTP (app/cli/*.py, no torch or ONNX
Runtime needed); serve, worker and db run on the server's machine (app/cli/server.py).

Every failure ends as one line on stderr and a non-zero exit code; `--debug` shows the traceback."""

from __future__ import annotations

import os
import sys
from importlib import metadata
from typing import Annotated

import typer
from typer.core import TyperGroup

from app.cli.api import CliError, one_line

try:  # typer >= 0.24 vendors click: its usage errors derive from TyperException
    from typer import TyperException as _Reported
except ImportError:  # pragma: no cover
    from click import ClickException as _Reported
PASS_THROUGH = (_Reported, typer.Exit, typer.Abort, SystemExit)  # typer prints these itself

HELP = """dlserve: train deep-learning models and serve them with ONNX Runtime.

Client commands find their server and key in this order: the --url/--key/--profile flags, then the
environment (DLSERVE_URL, DLSERVE_KEY, DLSERVE_PROFILE), then the profile `dlserve login` saved in
$XDG_CONFIG_HOME/dlserve/config.toml (~/.config/dlserve/config.toml). Every command prints a summary;
--json prints the API's answer for scripts."""


class RootGroup(TyperGroup):
    """Turns any exception of a command into one line on stderr and exit code 1 (CliError: its code)."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except PASS_THROUGH:
            raise
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except CliError as e:
            if _debug(ctx):
                raise
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(e.code) from None
        except Exception as e:
            if _debug(ctx):
                raise
            typer.echo(f"error: {type(e).__name__}: {one_line(str(e))} (--debug shows the traceback)", err=True)
            raise typer.Exit(1) from None


class DefaultGroup(TyperGroup):
    """`dlserve jobs` lists, `dlserve jobs ID` shows: a bare group runs `list`, an unknown word `show`."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if ctx.resilient_parsing:  # shell completion: offer the subcommands, don't pick one
            return super().parse_args(ctx, args)
        if not args or (args[0].startswith("-") and args[0] not in ("--help", "-h")):
            args = ["list", *args]
        elif args[0] not in self.commands and not args[0].startswith("-") and "show" in self.commands:
            args = ["show", *args]
        return super().parse_args(ctx, args)


def _debug(ctx: typer.Context) -> bool:
    return bool(ctx.find_root().meta.get("dlserve.debug")) or os.environ.get("DLSERVE_DEBUG", "") not in ("", "0")


def version() -> str:
    try:
        return metadata.version("dlserve")
    except metadata.PackageNotFoundError:
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dlserve {version()}")
        raise typer.Exit()


cli = typer.Typer(cls=RootGroup, help=HELP, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None)


@cli.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of a failure")] = False,
    _version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                           help="print the version and exit")] = False,
) -> None:
    ctx.meta["dlserve.debug"] = debug


def group(help: str) -> typer.Typer:
    return typer.Typer(cls=DefaultGroup, help=help, no_args_is_help=False)


def _register() -> None:
    from app.cli import datasets, examples, jobs, keys, login, predict, registry, server

    cli.command("login")(login.login)
    cli.command("train")(jobs.train)
    cli.add_typer(datasets.app, name="datasets")
    cli.add_typer(jobs.app, name="jobs")
    cli.add_typer(registry.models_app, name="models")
    cli.add_typer(registry.versions_app, name="versions")
    cli.add_typer(registry.aliases_app, name="aliases")
    cli.command("predict")(predict.predict)
    cli.add_typer(keys.app, name="keys")
    cli.command("serve")(server.serve)
    cli.command("worker")(server.worker)
    cli.add_typer(server.db_cli, name="db")
    cli.add_typer(examples.app, name="examples")
    from app.cli import store

    cli.add_typer(store.app, name="store")


_register()


def main() -> None:
    try:
        cli(prog_name="dlserve")
    except SystemExit:
        raise
    except BaseException as e:  # outside any command (argument parsing, completion): still one line
        if "--debug" in sys.argv or os.environ.get("DLSERVE_DEBUG", "") not in ("", "0"):
            raise
        typer.echo(f"error: {type(e).__name__}: {one_line(str(e))}", err=True)
        sys.exit(130 if isinstance(e, KeyboardInterrupt) else 1)
