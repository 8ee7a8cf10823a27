"""``latbench report [--device …] [--out report.html] [--images]``: the dashboard's charts from this
machine's database (LATBENCH_DATA_DIR / LATBENCH_DATABASE_URL) as one self-contained HTML file,
plus each device's chart as PNG and SVG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from exporters.errors import LatbenchError
from exporters.formats import device_class_choices, parse_device_class
from service.cli import check_url, check_writable, fail
from service.cli._server import ServerOpt, TokenOpt


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
    server: ServerOpt = None,
    token: TokenOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the charts' data as JSON instead of writing")
    ] = False,
) -> None:
    """Write the latency-vs-accuracy charts, fronts and ranks as one offline HTML file: from this
    data dir (the points `latbench profile` measured here too, labelled local) or --server's."""
    from service.dashboard.report import page, write_page

    try:
        devices = [parse_device_class(d, field="--device").value for d in device or []] or None
        check_writable(out, "--out")
        url = None if server is None else check_url(server)
        overview, per_device = _local(devices) if url is None else _remote(url, token, devices)
        if as_json:
            typer.echo(json.dumps({"devices": per_device}, indent=2, default=str))
            return
        written = write_page(page(overview, per_device), list(per_device), out=out, images=images)
    except LatbenchError as error:
        raise fail(error) from None
    for path in written:
        typer.echo(str(path))


def _local(devices: list[str] | None) -> tuple[Any, dict[str, dict]]:
    from service.cli._db import local_database
    from service.dashboard.report import data

    with local_database() as (session, settings):
        return data(session, reference_csv=settings.reference_csv, devices=devices)


def _remote(url: str, token: str | None, devices: list[str] | None) -> tuple[Any, dict[str, dict]]:
    """The server's dashboard data (GET /dashboard/data.json, overall and per device)."""
    import httpx

    from service.dashboard.report import chosen
    from service.remote import checked

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=url, timeout=60.0, headers=headers) as client:
            overview = checked(client.get("/dashboard/data.json"))
            overview["devices"] = chosen(devices, overview["devices"])
            per_device = {
                d: checked(client.get("/dashboard/data.json", params={"device": d}))
                for d in overview["devices"]
            }
    except httpx.HTTPError as error:
        raise LatbenchError(f"cannot reach {url}: {error}; check --server") from None
    return overview, per_device


def register(app: typer.Typer) -> None:
    app.command()(report)
