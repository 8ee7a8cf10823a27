"""``latbench gate``: exit 0 pass, 1 regression, 2 the gate could not run (bad input, a build
that failed, no runner for a device: one line on stderr), 3 inconclusive.

Three ways in: ``--baseline REF --candidate REF`` (one model), ``--config latbench.toml`` (the
models × devices × thresholds a repository gates), or a ``latbench compare --json`` document.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from exporters.errors import LatbenchError, SpecError
from service.cli import EXIT_USAGE, check_url, check_writable, data_dir, fail, host_lock_path

err_console = Console(stderr=True)


def _flags(
    threshold: str | None,
    metric: str | None,
    device: list[str] | None,
    baseline_ref: str | None,
    budget_reloads: int | None,
) -> dict[str, Any]:
    """The options given, each checked under the flag as typed; they override the config."""
    from exporters.formats import parse_device_class
    from exporters.keys import did_you_mean
    from service.gate.config import METRICS, parse_threshold

    if metric is not None and metric not in METRICS:
        raise SpecError(
            f"unknown metric {metric!r}{did_you_mean(metric, METRICS)}; choose from "
            f"{', '.join(METRICS)}",
            field="--metric",
        )
    flags = {
        "threshold": None if threshold is None else parse_threshold(threshold, field="--threshold"),
        "metric": metric,
        "devices": [parse_device_class(d, field="--device") for d in device or []],
        "baseline_ref": baseline_ref,
        "budget_reloads": budget_reloads,
    }
    return {key: value for key, value in flags.items() if value not in (None, [])}


def _check_sides(gate_config: Any, root: Path) -> None:
    """Every REF of every pair resolved before the first build, naming the side it is."""
    from service.cli._refs import check_ref

    gate_config.needs_tree()
    for entry in gate_config.models:
        for which, ref in (("baseline", entry.baseline), ("candidate", entry.ref)):
            if ref is not None:
                check_ref(entry.document(ref, root), side=f"{which} ({entry.name})")


def _check_devices(gate_config: Any, remote: Any) -> None:
    """Every device class has a runner (here, or the server's class formats) before any build."""
    from service.gate.compare import artifact_format

    for entry in gate_config.models:
        for device in entry.devices or gate_config.devices:
            artifact_format(device, remote)


def _decide_document(comparison: str, threshold: float, metric: str, allow_predicted: bool) -> None:
    from service.gate import decide_from_json

    if comparison == "-":
        text = sys.stdin.read()
    elif Path(comparison).is_file():
        text = Path(comparison).read_text()
    else:
        raise SpecError(f"no such file {comparison!r}", field="COMPARISON")
    decision = decide_from_json(text, threshold, metric=metric, allow_predicted=allow_predicted)
    typer.echo(decision.explain())
    raise typer.Exit(int(decision.verdict))


def _config(
    config: Path | None,
    baseline: str | None,
    candidate: str | None,
    overrides: dict,
):
    """The gate to run, from the file or from the one-model options; options override."""
    from pydantic import ValidationError

    from exporters.keys import validation_error
    from service.gate.config import GateConfig, load_config

    if config is not None:
        loaded = load_config(config)
        return loaded.model_copy(update=overrides), config.resolve().parent
    if candidate is None:
        raise SpecError(
            "give --candidate REF with --baseline REF or --baseline-ref, or --config FILE",
            field="candidate",
        )
    # a file's stem names its model (a CI machine's paths mean nothing in a stored gate run)
    name = Path(candidate).stem if Path(candidate).is_file() else candidate.removeprefix("python:")
    model = {"name": name, "ref": candidate, "baseline": baseline}
    try:
        return GateConfig.model_validate({**overrides, "models": [model]}), Path.cwd()
    except ValidationError as exc:
        raise validation_error(exc, GateConfig) from exc


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
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="latbench.toml ([gate]) or pyproject.toml"),
    ] = None,
    baseline_ref: Annotated[
        str | None, typer.Option(help="build the baseline at the merge base with this ref")
    ] = None,
    budget_reloads: Annotated[
        int | None,
        typer.Option(min=2, max=200, help="session pairs an inconclusive pair may grow to"),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            envvar="LATBENCH_SERVER",
            help="latbench server whose runners compare (both sides are uploaded)",
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="LATBENCH_API_TOKEN", help="the server's API token")
    ] = None,
    allow_predicted: Annotated[
        bool, typer.Option(help="accept a predicted (not measured) result as a comparison")
    ] = False,
    repository: Annotated[str | None, typer.Option(help="label of the stored gate run")] = None,
    branch: Annotated[str | None, typer.Option(help="label of the stored gate run")] = None,
    commit: Annotated[str | None, typer.Option(help="label of the stored gate run")] = None,
    pr: Annotated[str | None, typer.Option(help="pull request, label of the gate run")] = None,
    label: Annotated[
        list[str] | None, typer.Option(help="free label KEY=VALUE of the gate run, repeatable")
    ] = None,
    dashboard: Annotated[str | None, typer.Option(help="dashboard base URL for links")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
    markdown: Annotated[
        Path | None, typer.Option(help="write a pull-request comment in Markdown here")
    ] = None,
) -> None:
    """Fail CI only on a real regression: slower than THRESHOLD and the CI excludes 1."""
    try:
        server = None if server is None else check_url(server)
        dashboard = None if dashboard is None else check_url(dashboard, "--dashboard")
        markdown = None if markdown is None else check_writable(markdown, "--markdown")
        overrides = _flags(threshold, metric, device, baseline_ref, budget_reloads)
        labels = _labels(repository, branch, commit, pr, label or [])
        if comparison is not None:
            _decide_document(
                comparison,
                overrides.get("threshold", 0.05),
                overrides.get("metric", "wall"),
                allow_predicted,
            )
        gate_config, root = _config(config, baseline, candidate, overrides)
        _check_sides(gate_config, root)
        remote = _remote(server, token, allow_predicted, quiet=as_json)
        _check_devices(gate_config, remote)
        outcome = _run(gate_config, root, remote, quiet=as_json)
    except LatbenchError as error:
        fail(error)  # prints it; any failure to run the gate is 2, never a verdict's code
        raise typer.Exit(EXIT_USAGE) from None
    if remote is not None:
        _store(outcome, remote, labels)
    uploaded = remote.uploaded if remote is not None else {}
    _print(outcome, as_json=as_json, markdown=markdown, link=dashboard or server, uploaded=uploaded)
    raise typer.Exit(int(outcome.verdict))


def _labels(
    repository: str | None,
    branch: str | None,
    commit: str | None,
    pr: str | None,
    free: list[str],
) -> dict:
    """The gate run's labels; a free label is KEY=VALUE."""
    extra = {}
    for item in free:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"{item!r} is not KEY=VALUE", field="--label")
        extra[key] = value
    fixed = {"repository": repository, "branch": branch, "commit": commit, "pr": pr}
    return {**{k: v for k, v in fixed.items() if v}, "extra": extra}


def _remote(server: str | None, token: str | None, allow_predicted: bool, *, quiet: bool):
    from service.gate.compare import Remote

    if server is None:
        return None
    return Remote(server, token, allow_predicted, progress=None if quiet else _progress)


def _progress(message: str) -> None:
    err_console.print(f"[dim]{message}[/]")


def _store(outcome, remote, labels: dict) -> None:
    """Post the run to the server (its history per model and device); a failure to store it
    is said on stderr and leaves the verdict's exit code alone."""
    import httpx

    from service.remote import post_gate_run

    run = {
        "labels": labels,
        "verdict": outcome.verdict.name.lower(),
        "metric": outcome.metric,
        "rule": outcome.rule,
        "pairs": [
            {"model": p.pair.model, "device": p.pair.device.value,
             "baseline": p.pair.baseline.artifact.key, "candidate": p.pair.candidate.artifact.key,
             "verdict": p.decision.verdict.name.lower(), "threshold": p.pair.threshold,
             "ratio": p.decision.ratio, "ci": list(p.decision.ci95),
             "jobs": list(p.comparison.jobs)}
            for p in outcome.pairs
        ],
    }  # fmt: skip
    try:
        stored = post_gate_run(remote.url, remote.token, run)
    except (LatbenchError, httpx.HTTPError) as error:
        err_console.print(f"[yellow]warning:[/] the gate run was not stored on the server: {error}")
        return
    if remote.progress is not None:
        remote.progress(f"gate run {stored['id']} stored on {remote.url}")


def _run(gate_config, root: Path, server, *, quiet: bool):
    from devices.settings import parse_settings
    from exporters.artifacts import ArtifactStore
    from service.gate.config import plan
    from service.gate.run import Budget, run_gate

    def progress(message: str) -> None:
        if not quiet:
            _progress(message)

    store = ArtifactStore(data_dir())
    progress("building both sides of every pair")
    pairs = plan(gate_config, root, store, server, host_lock_path())
    if server is not None:
        progress(f"uploading {len(pairs)} pair(s) to {server.url}")
        for pair in pairs:  # under the gate's model name: the server's model page shows it
            for side in (pair.baseline, pair.candidate):
                server.upload(side.artifact, label=pair.model)
    settings = {"threads": 1} if gate_config.metric == "cpu" else {}
    return run_gate(
        pairs,
        settings=parse_settings(settings),
        metric=gate_config.metric,
        budget=Budget(max_reloads=gate_config.budget_reloads),
        server=server,
        progress=progress,
    )


def _print(
    outcome, *, as_json: bool, markdown: Path | None, link: str | None, uploaded: dict[str, str]
) -> None:
    from service.gate.report import markdown as to_markdown
    from service.gate.report import remarks, table

    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(to_markdown(outcome, dashboard=link, uploaded=uploaded))
    if as_json:
        typer.echo(json.dumps(outcome.to_dict(), indent=2))
        return
    console = Console()
    console.print(table(outcome))
    for line in remarks(outcome):
        console.print(f"[yellow]note:[/] {line}")


def register(app: typer.Typer) -> None:
    app.command()(gate)
