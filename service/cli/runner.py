"""``latbench runner``: attach this machine to a server as a runner of one device class. Needs
only the device runtime (onnxruntime or coremltools) and Celery: no torch, no database."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from devices.jobs.lock import DEFAULT_LOCK
from exporters.errors import LatbenchError
from exporters.formats import device_class_choices, parse_device_class
from service.cli import check_url, fail

TMP = Path(tempfile.gettempdir())


def runner(
    server: Annotated[str, typer.Option(help="server URL, e.g. http://lab-server:8000")],
    device_class: Annotated[
        str, typer.Option(help=f"what this machine measures as: {device_class_choices()}")
    ],
    token: Annotated[
        str | None,
        typer.Option(envvar="LATBENCH_RUNNER_TOKEN", help="the server's runner registration token"),
    ] = None,
    broker: Annotated[
        str | None,
        typer.Option(
            help="Redis URL as seen from this machine (default: the one the server announces)"
        ),
    ] = None,
    cache: Annotated[Path, typer.Option(help="where fetched artifacts are kept")] = (
        TMP / "latbench-runner-cache"
    ),
    lock: Annotated[
        Path,
        typer.Option(
            help="host lock shared with exports on this machine (the "
            "server's LATBENCH_HOST_LOCK default)"
        ),
    ] = DEFAULT_LOCK,
) -> None:
    """Register with SERVER, heart-beat, and measure jobs of DEVICE_CLASS one at a time."""
    import logging

    from devices.jobs.agent import run_agent

    try:
        measured_as = parse_device_class(device_class, field="--device-class")
        server = check_url(server)
    except LatbenchError as error:
        raise fail(error) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run_agent(
        server=server,
        device_class=measured_as,
        registration_token=token,
        broker_url=broker,
        cache=cache,
        lock_path=lock,
    )


def register(app: typer.Typer) -> None:
    app.command()(runner)
