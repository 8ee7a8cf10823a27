"""``latbench report [--device …] [--out report.html] [--images]``: the dashboard's charts from this
machine's database (LATBENCH_DATA_DIR / LATBENCH_DATABASE_URL) as one self-contained HTML file,
plus each device's chart as PNG and SVG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from exporters.errors import LatbenchError
from exporters.formats import device_class_choices, parse_device_class
from service.cli import check_writable, fail


def report(
    device: Annotated[
        list[str] | None,
        typer.Option(
            help=f"device class to include ({device_class_choices()}); repeat; default: all"
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="HTML file to write")] = Path("report.html"),
    images: Annotated[
        bool, typer.Option(help="also write <out>-<device>.png/.svg (needs chromium)")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the charts' data as JSON instead of writing")
    ] = False,
) -> None:
    """Write the latency-vs-accuracy charts, fronts and ranks as one offline HTML file (the
    points measured here by `latbench profile` too, labelled local)."""
    from service.dashboard.report import data, write
    from service.db.engine import make_engine, make_sessionmaker, upgrade
    from service.settings import Settings

    try:
        devices = [parse_device_class(d, field="--device").value for d in device or []]
        check_writable(out, "--out")
    except LatbenchError as error:
        raise fail(error) from None
    settings = Settings()
    engine = make_engine(settings.db_url)
    try:
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            if as_json:
                _, per_device = data(
                    session, reference_csv=settings.reference_csv, devices=devices or None
                )
                typer.echo(json.dumps({"devices": per_device}, indent=2, default=str))
                return
            written = write(
                session,
                reference_csv=settings.reference_csv,
                devices=devices or None,
                out=out,
                images=images,
            )
    except LatbenchError as error:
        raise fail(error) from None
    finally:
        engine.dispose()
    for path in written:
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.command()(report)
