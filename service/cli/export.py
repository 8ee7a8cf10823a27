"""`latbench export` and `latbench models`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from exporters.errors import LatbenchError, SpecError
from exporters.formats import ExportFormat, Precision, device_class_choices, parse_device_class
from service.cli import EXIT_FAILURE, data_dir, fail, host_lock_path, summarised_warnings
from service.cli._refs import check_ref

if TYPE_CHECKING:
    from exporters.export import Buildable, ExportReport
    from exporters.spec import ModelSpec

err_console = Console(stderr=True)


def parse_formats(value: str | None) -> tuple[ExportFormat, ...] | None:
    if value is None:
        return None
    from exporters.keys import did_you_mean

    names = [f.value for f in ExportFormat]
    parts = [part.strip() for part in value.split(",") if part.strip()]
    for part in parts:
        if part not in names:
            raise SpecError(
                f"unknown format {part!r}{did_you_mean(part, names)}; choose from "
                f"{', '.join(names)}",
                field="--format",
            )
    return tuple(ExportFormat(part) for part in parts)


@contextmanager
def progress_bar(enabled: bool) -> Iterator:
    """A rich bar on stderr (stdout stays clean for --json); yields the exporters' callback."""
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("resolving spec", total=None)

        def update(description: str, done: int, total: int) -> None:
            bar.update(task, description=description, completed=done, total=total)

        yield update


def export_spec(
    spec: ModelSpec | Buildable, formats: tuple[ExportFormat, ...] | None, *, quiet: bool
) -> ExportReport:
    """The service's export step (cached store, shared host lock) with a progress bar; every
    command that needs an artifact comes through here and takes it with ``report.require``."""
    from service import pipeline

    with progress_bar(enabled=not quiet) as update, summarised_warnings():
        return pipeline.export(
            spec, formats, store_root=data_dir(), lock_path=host_lock_path(), progress=update
        )


def _print_report(report) -> None:
    console = Console()
    gmacs = f"{report.macs / 1e9:.3f}" if report.macs is not None else "?"
    params = f"{report.params / 1e6:.2f} M" if report.params is not None else "?"
    rel = report.reparam["rel_error"] if report.reparam else None
    console.print(
        f"[bold]{report.model}[/] ({report.family}) input {report.input_shape}  params {params}  "
        f"GMACs {gmacs}  reparam rel. error {rel:.2e}  weights: {report.weights}"
        if rel is not None
        else f"[bold]{report.model}[/] params {params} GMACs {gmacs}"
    )
    table = Table("format", "precision", "status", "parity (rel)", "via", "seconds", "artifact")
    for art in report.artifacts:
        status = ("cached" if art.cached else "ok") if art.ok else "[red]failed[/]"
        parity = f"{art.parity['rel_error']:.1e}" if art.parity else "n/a"
        seconds = f"{art.export_seconds:.1f}" if art.export_seconds is not None else ""
        table.add_row(
            art.format,
            art.precision,
            status,
            parity,
            art.export_path or "",
            seconds,
            art.path or art.error or "",
        )
    console.print(table)


def export_command(
    model: Annotated[
        str, typer.Argument(help="model name, spec file or python:package.module:factory")
    ],
    format: Annotated[
        str | None,
        typer.Option(
            help="comma list: onnx,coreml,pt2 (default: the formats --device needs, else onnx)"
        ),
    ] = None,
    device: Annotated[
        list[str] | None,
        typer.Option(
            help=f"export what this device class runs, repeatable: {device_class_choices()}"
        ),
    ] = None,
    precision: Annotated[Precision | None, typer.Option(help="default: per format")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
) -> None:
    """Build, reparameterize (proven equivalent) and export a model: ONNX unless --format,
    --device (CoreML for iphone12-class) or the spec file's `formats` asks for others."""
    from exporters.sources import buildable, with_precision

    try:
        classes = [parse_device_class(d, field="--device") for d in device or []]
        formats = parse_formats(format) or tuple(dict.fromkeys(c.formats[0] for c in classes))
        check_ref(model)
        source = with_precision(buildable(model), precision)
        own = "formats" in getattr(source, "model_fields_set", ())  # a spec file's own list
        report = export_spec(
            source, formats or (None if own else (ExportFormat.ONNX,)), quiet=as_json
        )
    except LatbenchError as error:
        raise fail(error) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)


def models_command(
    pattern: Annotated[str, typer.Argument(help="shell-style pattern, e.g. 'fastvit*'")] = "*",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the model zoo (every timm model plus native ParC-Net models); --json prints what
    GET /models answers (params, MACs, published top-1), from this data dir's database."""
    from exporters.zoo import get_model, list_models

    entries = [get_model(name) for name in list_models(pattern)]
    if as_json:
        typer.echo(_models_json(entries))
        return
    rows = [
        {"name": e.name, "family": e.family, "input": list(e.input_size), "source": e.source}
        for e in entries
    ]
    table = Table("name", "family", "input (C,H,W)", "source", title=f"{len(rows)} models")
    for row in rows:
        table.add_row(row["name"], row["family"], str(tuple(row["input"])), row["source"])
    Console().print(table)


def _models_json(entries: list) -> str:
    from service import reference
    from service.api.present import models_public
    from service.cli._db import local_database

    with local_database() as (session, settings):
        body = models_public(session, reference.load(settings.reference_csv), entries, len(entries))
    return body.model_dump_json(indent=2)


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
    app.command("models")(models_command)
