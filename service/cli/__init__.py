"""The `latbench` command. Each module of this package adds one command group through
``register(app)``, so a new command is one file; errors of the latbench tree become one line on
stderr and an exit code, never a traceback."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path

import typer

from exporters.errors import LatbenchError, SpecError

EXIT_USAGE = 2
EXIT_FAILURE = 1

app = typer.Typer(
    name="latbench",
    help="On-device latency profiling for vision models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def data_dir() -> Path:
    """Where artifacts and the default SQLite database live (LATBENCH_DATA_DIR, default .latbench)."""
    return Path(os.environ.get("LATBENCH_DATA_DIR", ".latbench")).resolve()


def host_lock_path() -> Path:
    """The host lock the server and runners on this machine take too (LATBENCH_HOST_LOCK), so a
    CLI measurement never overlaps their exports or measurements."""
    from devices.jobs.lock import DEFAULT_LOCK

    return Path(os.environ.get("LATBENCH_HOST_LOCK", DEFAULT_LOCK))


def fail(error: LatbenchError) -> typer.Exit:
    """Print an actionable one-line error; bad input is a usage error (2), the rest a failure (1)."""
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    return typer.Exit(EXIT_USAGE if isinstance(error, SpecError) else EXIT_FAILURE)


def _register_commands() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{module.name}").register(app)


_register_commands()


def main() -> None:
    try:
        app()
    except LatbenchError as error:  # commands may raise instead of calling fail()
        raise SystemExit(fail(error).exit_code) from None
    finally:
        sys.stdout.flush()
