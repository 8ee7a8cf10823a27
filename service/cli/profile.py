"""`latbench profile` (export, cached, then measure on a local runner) and `latbench compare`
(the A/B mode: ratio B/A with its 95% CI across freshly loaded session pairs). Both go through the
service's own steps: ``pipeline.export`` and ``devices.jobs.profile`` (runner chosen by device
class, host lock held), so a CLI figure is taken exactly as a service result is."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from exporters.errors import LatbenchError, RunnerUnavailableError, SpecError
from exporters.formats import ExportFormat, Precision, device_class_choices, parse_device_class
from service.cli import data_dir, fail, host_lock_path, renamed, summarised_warnings
from service.cli._refs import check_ref
from service.cli._server import (
    ServerOpt,
    TokenOpt,
    on_server,
    remote_profile,
    remote_side,
    say_remote,
)
from service.cli._store import keep, spec_of
from service.cli.export import progress_bar

err_console = Console(stderr=True)

Device = Annotated[
    str | None,
    typer.Option(help=f"device class: {device_class_choices()} (default: this host's CPU)"),
]
RunnerName = Annotated[
    str | None,
    typer.Option("--runner", help="a runner by name or alias (ort-cpu, cpu, coreml, ...)"),
]
Threads = Annotated[int | None, typer.Option(help="intra-op threads (default: physical cores)")]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON document")]


def choose(device: str | None, runner: str | None) -> tuple[str, ExportFormat]:
    """``--device`` (a device class) and ``--runner`` to the runner and its artifact format; a
    class with no runner here says what will work instead."""
    from devices.jobs.profile import choose_runner

    device_class = None if device is None else parse_device_class(device, field="--device")
    try:
        return choose_runner(device_class, runner)
    except RunnerUnavailableError as error:
        if device_class is None:
            raise
        raise RunnerUnavailableError(
            f"{error}; for {device_class.value} from here: `latbench predict MODEL --device "
            f"{device_class.value}` (a prediction), or POST /profile with devices "
            f'["{device_class.value}"] to a server that has a runner of that class'
        ) from None
    except SpecError as error:
        raise renamed(error, "--runner" if runner is not None else "--device") from None


def _export(
    model: str,
    fmt: ExportFormat,
    precision: Precision | None,
    quiet: bool,
    calibration: Path | None = None,
) -> dict[str, Any]:
    """REF -> cached artifact in the runner's format (built and proven, or a ready artifact
    validated as given), through the service's export step; what a result needs to cite it.
    ``calibration``: an int8 side's calibration set (.npy file or image folder)."""
    from service import pipeline

    ref: str | dict[str, Any] = model
    if calibration is not None and precision is Precision.INT8:
        from exporters.sources.calibrated import calibrated_spec

        ref = calibrated_spec(model, calibration, data_dir())
    with progress_bar(enabled=not quiet) as update, summarised_warnings():
        done = pipeline.materialize(
            ref,
            fmt,
            store_root=data_dir(),
            lock_path=host_lock_path(),
            precision=precision,
            progress=update,
        )
    meta = done.artifact.meta
    return {
        "model": done.model,
        "spec_hash": meta.get("spec_hash") or done.artifact.key.split("-")[0],
        "weights": meta.get("weights"),
        "input_shape": meta.get("input_shape"),
        "macs": meta.get("macs"),
        "format": done.artifact.format.value,
        "precision": done.artifact.precision.value,
        "artifact_key": done.artifact.key,
        "reparam": done.reparam_summary,
        "path": Path(done.artifact.path),
    }


@contextmanager
def measuring(
    enabled: bool, label: str, total: int
) -> Iterator[Callable[[str, int, float], None] | None]:
    """A rich bar on stderr for the sampling phase (samples so far vs the iteration cap)."""
    if not enabled:
        yield None
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=total, info="warming up")

        def update(phase: str, done: int, value: float) -> None:
            if phase == "compare":
                bar.update(task, completed=done, total=value, info=f"session pair {done}/{value:g}")
            else:
                bar.update(task, completed=done, info=f"n={done}  CI ±{value:.1%}")

        yield update


# the flag a user typed for each measurement setting, so an error names it and not the field
FLAG_OF = {"threads": "--threads", "target_rel_ci": "--target", "max_seconds": "--max-seconds",
           "sustained_seconds": "--sustained", "ab_reloads": "--reloads", "ab_blocks": "--blocks"}  # fmt: skip


def _settings(threads: int | None, target: float, max_seconds: float, **extra: Any) -> Any:
    from devices.settings import parse_settings

    try:
        return parse_settings(
            {"threads": threads, "target_rel_ci": target, "max_seconds": max_seconds, **extra}
        )
    except SpecError as error:
        name = (error.field or "").removeprefix("settings.")
        if name not in FLAG_OF:
            raise
        raise renamed(error, FLAG_OF[name]) from None


def _even(value: int) -> int:
    if value % 2:
        raise typer.BadParameter(f"{value} is odd; load order alternates, so keep it even")
    return value


def _latency_row(table: Table, name: str, lat: dict[str, Any]) -> None:
    lo, hi = lat["ci95"]
    table.add_row(name, f"{lat['median']:.3f}", f"[{lo:.3f}, {hi:.3f}]", f"{lat['mean']:.3f}",
                  f"{lat['min']:.3f}", f"{lat['p90']:.3f}", f"{lat['p99']:.3f}", f"{lat['cv']:.1%}",
                  str(lat["n"]))  # fmt: skip


def _latency_table(title: str) -> Table:
    return Table("", "median ms", "95% CI", "mean", "min", "p90", "p99", "CV", "n", title=title)


def _print_profile(doc: dict[str, Any]) -> None:
    console = Console()
    dev = doc["device"]
    table = _latency_table(
        f"{doc['model']} ({doc['format']} {doc['precision']}, weights {doc['weights']}) on "
        f"{dev['runner']}: {dev['cpu_model']}, {dev['threads']} thread(s), "
        f"{dev['runtime']} {dev['runtime_version']}"
    )
    _latency_row(table, "latency", doc["latency_ms"])
    console.print(table)
    met = "met" if doc["target_met"] else f"NOT met ({doc['stop_reason']})"
    console.print(
        f"load {doc['load_ms']:.1f} ms · warm-up {doc['warmup_iters']} runs · precision target "
        f"±{doc['settings']['target_rel_ci']:.1%} {met} · other processes used "
        f"{doc['host_load']['others_cpu_pct']:.0f}% of the CPU meanwhile"
    )
    if doc.get("quantization"):
        console.print(quantization_line(doc["quantization"]))
    for note in doc["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    for window in doc.get("windows") or []:
        console.print(
            f"  window at {window['start_s']:6.1f} s: median {window['median_ms']:.3f} ms"
        )
    if doc.get("layers"):
        _print_layers(console, doc["layers"])
        over = doc["profiler_overhead"]
        console.print(
            f"plain median {over['plain_median_ms']:.3f} ms · with profiler "
            f"{over['profiled_median_ms']:.3f} ms ({over['overhead']:+.1%}) · per-layer sum "
            f"{over['layer_sum_ms']:.3f} ms ({over['layer_sum_over_plain']:.0%} of plain)"
        )


def _print_layers(console: Console, layers: dict[str, Any]) -> None:
    for key, label in (("by_block", "block"), ("by_op", "op")):
        table = Table(label, "ms / run", "share", title=f"per-{label} time (onnxruntime profiler)")
        for row in layers[key][:12]:
            name = f"{row['block']} {row['module']}".strip() if key == "by_block" else row["op"]
            table.add_row(name, f"{row['ms']:.3f}", f"{row['share']:.1%}")
        console.print(table)


def quantization_line(stated: dict[str, Any]) -> str:
    """One line of a quantized artifact's statement: what ran in int8, how it was calibrated."""
    fraction = stated.get("int8_mac_fraction")
    share = f"{fraction:.1%} of MACs in int8 kernels" if fraction is not None else "int8 share ?"
    return (
        f"quantized ({stated['scheme']}): {share}, SQNR {stated.get('sqnr_db')} dB, "
        f"calibration {stated['calibration']} ({stated['samples']} samples)"
    )


def _calibration_needs_int8(calibration: Path | None, *precisions: Precision | None) -> None:
    if calibration is not None and Precision.INT8 not in precisions:
        raise SpecError(
            "a calibration set applies to an int8 side only (--precision int8)",
            field="--calibration",
        )


Calibration = Annotated[
    Path | None,
    typer.Option(help="int8: calibration set, a .npy array [N,C,H,W] or a folder of images"),
]


def profile_command(
    model: Annotated[str, typer.Argument(help="model name, spec file, python:, or .onnx/.pt2")],
    device: Device = None,
    runner: RunnerName = None,
    precision: Annotated[Precision | None, typer.Option(help="default: per format")] = None,
    calibration: Calibration = None,
    threads: Threads = None,
    layers: Annotated[
        bool, typer.Option("--layers", help="per-layer breakdown (onnxruntime)")
    ] = False,
    target: Annotated[
        float, typer.Option(help="precision target: 95% CI of the median within ±")
    ] = 0.01,
    max_seconds: Annotated[float, typer.Option(help="time cap for sampling")] = 30.0,
    sustained: Annotated[
        float | None,
        typer.Option(help="sample for SECONDS, reporting the median per 10 s window (throttling)"),
    ] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    as_json: AsJson = False,
) -> None:
    """Export (cached) and measure a model on this host, as the service would (--server: on that
    server's runner of the class)."""
    from devices.jobs.profile import measure

    try:
        check_ref(model)
        if server is not None:
            url, device_class = on_server(server, device, runner)
            settings = _settings(threads, target, max_seconds, sustained_seconds=sustained)
            doc = remote_profile(url, token, model, device_class, settings)
            say_remote(doc, model, as_json=as_json)
            return
        name, fmt = choose(device, runner)
        settings = _settings(threads, target, max_seconds, sustained_seconds=sustained)
        _calibration_needs_int8(calibration, precision)
        exported = _export(model, fmt, precision, quiet=as_json, calibration=calibration)
        with measuring(not as_json, f"measuring {exported['model']}", settings.max_iters) as update:
            measurement = measure(
                exported["path"],
                runner=name,
                settings=settings,
                lock_path=host_lock_path(),
                progress=update,
                layers=layers,
            )
    except LatbenchError as error:
        raise fail(error) from None
    exported.pop("path")
    doc = {**exported, **measurement.to_dict()}
    doc["job_id"] = keep(
        "profile", {"model": (exported, spec_of(model, precision))}, name, measurement.to_dict()
    )
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print_profile(doc)


def compare_command(
    a: Annotated[str, typer.Argument(help="baseline A: model name, spec file, python:, artifact")],
    b: Annotated[str, typer.Argument(help="candidate B: model name, spec file, python:, artifact")],
    device: Device = None,
    runner: RunnerName = None,
    precision: Annotated[Precision | None, typer.Option(help="default: per format")] = None,
    precision_b: Annotated[
        Precision | None, typer.Option(help="B's precision (default: --precision), e.g. int8")
    ] = None,
    calibration: Calibration = None,
    threads: Threads = None,
    reloads: Annotated[
        int, typer.Option(callback=_even, help="freshly loaded session pairs (even)")
    ] = 6,
    blocks: Annotated[int, typer.Option(help="ABBA blocks per session pair")] = 15,
    server: ServerOpt = None,
    token: TokenOpt = None,
    as_json: AsJson = False,
) -> None:
    """A/B mode: latency ratio B/A, interleaved ABBA on one runner, 95% CI across reloads
    (--server: on that server's runner of the class)."""
    from devices.jobs.compare import ab

    try:
        check_ref(a, side="a")
        check_ref(b, side="b")
        if server is not None:
            _compare_on_server(server, token, a, b, device, runner, threads, reloads, blocks,
                               as_json)  # fmt: skip
            return
        name, fmt = choose(device, runner)
        settings = _settings(threads, 0.01, 30.0, ab_reloads=reloads, ab_blocks=blocks)
        _calibration_needs_int8(calibration, precision, precision_b)
        side_a = _export(a, fmt, precision, quiet=as_json, calibration=calibration)
        side_b = _export(b, fmt, precision_b or precision, quiet=as_json, calibration=calibration)
        with measuring(not as_json, "A/B", reloads) as update:
            comparison = ab(
                side_a.pop("path"),
                side_b.pop("path"),
                runner=name,
                settings=settings,
                lock_path=host_lock_path(),
                progress=update,
            )
    except LatbenchError as error:
        raise fail(error) from None
    doc = {"a_model": side_a, "b_model": side_b, **comparison.to_dict()}
    sides = {
        "baseline": (side_a, spec_of(a, precision)),
        "candidate": (side_b, spec_of(b, precision_b or precision)),
    }
    doc["job_id"] = keep("compare", sides, name, comparison.to_dict())
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    table = _latency_table(
        f"A/B on {comparison.runner} ({comparison.order}, {reloads} session pairs)"
    )
    _latency_row(table, f"A {side_a['model']}", doc["a"])
    _latency_row(table, f"B {side_b['model']}", doc["b"])
    Console().print(table)
    lo, hi = comparison.ci95
    verdict = "differ" if comparison.estimate.excludes_one() else "no difference shown"
    Console().print(f"B/A = {comparison.ratio:.4f}  95% CI [{lo:.4f}, {hi:.4f}]  ({verdict})")
    if comparison.cpu_estimate is not None:
        cpu = comparison.cpu_estimate
        Console().print(
            f"thread CPU time B/A = {cpu.ratio:.4f}  95% CI [{cpu.ci95[0]:.4f}, {cpu.ci95[1]:.4f}]"
        )
    for side, stated in (comparison.quantization or {}).items():
        Console().print(f"{side.upper()} {quantization_line(stated)}")
    for note in comparison.notes:
        Console().print(f"[yellow]note:[/] {note}")


def _compare_on_server(
    server: str, token: str | None, a: str, b: str, device: str | None, runner: str | None,
    threads: int | None, reloads: int, blocks: int, as_json: bool,
) -> None:  # fmt: skip
    from service.remote import remote_compare

    url, device_class = on_server(server, device, runner)
    settings = _settings(threads, 0.01, 30.0, ab_reloads=reloads, ab_blocks=blocks)
    sides = [remote_side(url, token, ref, device_class) for ref in (a, b)]
    record = remote_compare(url, token, sides[0], sides[1], device_class, settings)
    doc = {"a_model": a, "b_model": b, "server": url, **record.model_dump(mode="json")}
    say_remote(doc, f"{b} vs {a}", as_json=as_json)


def register(app: typer.Typer) -> None:
    app.command("profile")(profile_command)
    app.command("compare")(compare_command)
