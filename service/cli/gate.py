"""``latbench gate``: exit 0 pass, 1 regression, 2 usage error, 3 inconclusive."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from exporters.errors import SpecError
from service.cli import fail


def gate(
    comparison: Annotated[
        str, typer.Argument(help="`latbench compare --json` output; - for stdin")
    ],
    threshold: Annotated[float, typer.Option(help="tolerated slowdown, 0.05 = 5%")] = 0.05,
    metric: Annotated[
        str, typer.Option(help="wall (latency) or cpu (thread CPU time, single-thread CPU runs)")
    ] = "wall",
) -> None:
    """Fail CI only on a real regression: slower than THRESHOLD and the CI excludes 1."""
    from service.gate import decide_from_json

    try:
        if comparison == "-":
            text = sys.stdin.read()
        elif Path(comparison).is_file():
            text = Path(comparison).read_text()
        else:
            raise SpecError(f"no such file {comparison!r}", field="comparison")
        decision = decide_from_json(text, threshold, metric=metric)
    except SpecError as error:
        raise fail(error) from None
    typer.echo(decision.explain())
    raise typer.Exit(int(decision.verdict))


def register(app: typer.Typer) -> None:
    app.command()(gate)
