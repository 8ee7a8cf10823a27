"""``latbench gate``: exit 0 pass, 1 regression, 2 the gate could not run (bad input, a build
that failed, no runner for a device: one line on stderr), 3 inconclusive.

Three ways in: ``--baseline REF --candidate REF`` (one model), ``--config latbench.toml`` (the
models × devices × thresholds a repository gates), or a ``latbench compare --json`` document.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from exporters.errors import LatbenchError, SpecError
from service.cli import EXIT_USAGE, data_dir, fail

err_console = Console(stderr=True)


def _decide_document(comparison: str, threshold: float, metric: str) -> None:
    from service.gate import decide_from_json

    if comparison == "-":
        text = sys.stdin.read()
    elif Path(comparison).is_file():
        text = Path(comparison).read_text()
    else:
        raise SpecError(f"no such file {comparison!r}", field="comparison")
    decision = decide_from_json(text, threshold, metric=metric)
    typer.echo(decision.explain())
    raise typer.Exit(int(decision.verdict))


def _config(
    config: Path | None,
    baseline: str | None,
    candidate: str | None,
    overrides: dict,
):
    """The gate to run, from the file or from the one-model options; options override."""
    from service.gate.config import GateConfig, load_config

    if config is not None:
        loaded = load_config(config)
        merged = {**loaded.model_dump(), **{k: v for k, v in overrides.items() if v}}
        return GateConfig.model_validate(merged), config.resolve().parent
    if candidate is None:
        raise SpecError(
            "give --candidate REF with --baseline REF or --baseline-ref, or --config FILE",
            field="candidate",
        )
    name = candidate.removeprefix("python:")
    model = {"name": name, "ref": candidate, "baseline": baseline}
    data = {**{k: v for k, v in overrides.items() if v}, "models": [model]}
    return GateConfig.model_validate(data), Path.cwd()


def gate(
    comparison: Annotated[
        str | None, typer.Argument(help="a `latbench compare --json` document (- for stdin)")
    ] = None,
    baseline: Annotated[str | None, typer.Option(help="baseline REF")] = None,
    candidate: Annotated[
        str | None,
        typer.Option(help="candidate REF: zoo name, spec file, python:pkg.mod:factory, artifact"),
    ] = None,
    device: Annotated[
        list[str] | None, typer.Option(help="device class, repeatable (default: this CPU)")
    ] = None,
    threshold: Annotated[str | None, typer.Option(help="tolerated slowdown: 5% or 0.05")] = None,
    metric: Annotated[
        str | None, typer.Option(help="wall (latency) or cpu (thread CPU time, one thread)")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="latbench.toml ([gate]) or pyproject.toml")
    ] = None,
    baseline_ref: Annotated[
        str | None, typer.Option(help="build the baseline at the merge base with this ref")
    ] = None,
    budget_reloads: Annotated[
        int | None, typer.Option(help="session pairs an inconclusive pair may grow to")
    ] = None,
    server: Annotated[
        str | None, typer.Option(help="latbench server whose runners compare")
    ] = None,
    dashboard: Annotated[str | None, typer.Option(help="dashboard base URL for links")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
    markdown: Annotated[
        Path | None, typer.Option(help="write a pull-request comment in Markdown here")
    ] = None,
) -> None:
    """Fail CI only on a real regression: slower than THRESHOLD and the CI excludes 1."""
    from service.gate.config import parse_threshold

    try:
        if comparison is not None:
            _decide_document(comparison, parse_threshold(threshold or 0.05), metric or "wall")
        overrides = {"threshold": threshold, "metric": metric, "devices": device,
                     "baseline_ref": baseline_ref, "budget_reloads": budget_reloads}  # fmt: skip
        gate_config, root = _config(config, baseline, candidate, overrides)
        outcome = _run(gate_config, root, server, quiet=as_json)
    except LatbenchError as error:
        fail(error)  # prints it; any failure to run the gate is 2, never a verdict's code
        raise typer.Exit(EXIT_USAGE) from None
    _print(outcome, as_json=as_json, markdown=markdown, link=dashboard or server)
    raise typer.Exit(int(outcome.verdict))


def _run(gate_config, root: Path, server: str | None, *, quiet: bool):
    from devices.settings import parse_settings
    from exporters.artifacts import ArtifactStore
    from service.gate.config import plan
    from service.gate.run import Budget, run_gate

    def progress(message: str) -> None:
        if not quiet:
            err_console.print(f"[dim]{message}[/]")

    store = ArtifactStore(data_dir())
    progress("building both sides of every pair")
    pairs = plan(gate_config, root, store, server)
    settings = {"threads": 1} if gate_config.metric == "cpu" else {}
    return run_gate(
        pairs,
        settings=parse_settings(settings),
        metric=gate_config.metric,
        budget=Budget(max_reloads=gate_config.budget_reloads),
        server=server,
        progress=progress,
    )


def _print(outcome, *, as_json: bool, markdown: Path | None, link: str | None) -> None:
    from service.gate.report import markdown as to_markdown
    from service.gate.report import remarks, table

    if markdown is not None:
        markdown.write_text(to_markdown(outcome, dashboard=link))
    if as_json:
        typer.echo(json.dumps(outcome.to_dict(), indent=2))
        return
    console = Console()
    console.print(table(outcome))
    for line in remarks(outcome):
        console.print(f"[yellow]note:[/] {line}")


def register(app: typer.Typer) -> None:
    app.command()(gate)
