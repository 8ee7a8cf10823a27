"""The `latbench` command. Each module of this package adds one command group through
``register(app)``, so a new command is one file. Every error a user can cause (a bad option value,
an unknown flag, a misspelt spec key, an unknown model or device) becomes one line on stderr and
exit 2, never a traceback; exit 1 is kept for a run that failed and, in ``gate``, a regression.

Exit codes (also in README.md):

    0  done (gate: no regression)
    1  a run failed (an export, a measurement, the server busy); gate: a regression was found
    2  usage or input error: the line names the flag, key or side as written
    3  gate only: inconclusive (the interval straddles the threshold)
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from typer._click import exceptions as click  # typer 0.29 vendors click as typer._click
from typer.core import TyperGroup

from exporters import errors

EXIT_USAGE = 2
EXIT_FAILURE = 1

# What the user gave (or a host that cannot run it): exit 2. Any other error is a run that
# failed (an export, a measurement, a server busy or unreachable): exit 1.
INPUT_ERRORS: tuple[type[errors.LatbenchError], ...] = (
    errors.SpecError,
    errors.RunnerUnavailableError,
    errors.NotFoundError,
    errors.AuthError,
    errors.PayloadTooLargeError,
)


class OneLineErrors(TyperGroup):
    """Click's usage errors (an unknown option, a value of the wrong type, a missing argument)
    as one ``error:`` line naming the flag as typed, exit 2; latbench errors through ``fail``."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[no-untyped-def, override]
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.NoArgsIsHelpError as error:
            error.show()
            code = error.exit_code
        except click.UsageError as error:
            where = f" (see `{error.ctx.command_path} --help`)" if error.ctx else ""
            say(f"{error.format_message()}{where}")
            code = EXIT_USAGE
        except click.ClickException as error:
            say(error.format_message())
            code = error.exit_code
        except typer.Abort:
            say("aborted")
            code = EXIT_FAILURE
        except errors.LatbenchError as error:  # commands may raise instead of calling fail()
            code = fail(error).exit_code
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    name="latbench",
    cls=OneLineErrors,
    help="On-device latency profiling for vision models. Exit codes: 0 done, 1 a run failed "
    "(gate: a regression), 2 usage or input error, 3 gate inconclusive.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


VERBOSE = {"on": False}  # -v: third-party warnings in full instead of one summary line


@app.callback()
def _options(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="show third-party warnings in full (default: one line)"
    ),
) -> None:
    VERBOSE["on"] = verbose


@contextmanager
def summarised_warnings() -> Iterator[None]:
    """Warnings libraries raise while we build or measure (torch.onnx, coremltools, ...) as one
    line on stderr naming where they came from; every one in full with ``-v``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        yield
    if not caught:
        return
    if VERBOSE["on"]:
        for item in caught:
            typer.echo(f"warning: {item.category.__name__}: {item.message} ({item.filename})",
                       err=True)  # fmt: skip
        return
    origins = sorted({_origin(item.filename) for item in caught})
    typer.echo(
        f"note: {len(caught)} warning(s) from {', '.join(origins)} (-v shows them)", err=True
    )


def _origin(filename: str) -> str:
    parts = Path(filename).parts
    return (
        parts[parts.index("site-packages") + 1] if "site-packages" in parts else Path(filename).stem
    )


def data_dir() -> Path:
    """Where artifacts and the default SQLite database live (LATBENCH_DATA_DIR, default .latbench)."""
    return Path(os.environ.get("LATBENCH_DATA_DIR", ".latbench")).resolve()


def host_lock_path() -> Path:
    """The host lock the server and runners on this machine take too (LATBENCH_HOST_LOCK), so a
    CLI measurement never overlaps their exports or measurements."""
    from devices.jobs.lock import lock_path_from_env

    return lock_path_from_env()


def say(message: str) -> None:
    """One ``error:`` line on stderr, whatever the message held."""
    line = " ".join(message.removeprefix("Value error, ").split()).replace(": Value error, ", ": ")
    typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)


def renamed(error: errors.SpecError, field: str) -> errors.SpecError:
    """The same complaint under the name the user typed (a flag, a side) instead of a field."""
    message = str(error).removeprefix(f"{error.field}: ") if error.field else str(error)
    return errors.SpecError(message, field=field)


def check_url(url: str, flag: str = "--server") -> str:
    """A server URL, refused before any build when it cannot be one."""
    if not url.startswith(("http://", "https://")):
        raise errors.SpecError(f"{url!r} is not an http:// or https:// URL", field=flag)
    return url.rstrip("/")


def check_writable(path: Path, flag: str) -> Path:
    """A file the command will write at the end (its missing directories made then), checked
    before the work that precedes it: its nearest existing ancestor is a writable directory."""
    ancestor = next(p for p in path.absolute().parents if p.exists())
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise errors.SpecError(f"cannot write {str(path)!r}: {str(ancestor)!r} is no writable "
                               "directory", field=flag)  # fmt: skip
    return path


def exit_code(error: errors.LatbenchError) -> int:
    return EXIT_USAGE if isinstance(error, INPUT_ERRORS) else EXIT_FAILURE


def fail(error: errors.LatbenchError) -> typer.Exit:
    """Print an actionable one-line error; the Exit to raise with its code."""
    say(str(error))
    return typer.Exit(exit_code(error))


def _register_commands() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{module.name}").register(app)


_register_commands()


def main() -> None:
    try:
        app()
    finally:
        sys.stdout.flush()
