"""``latbench runner``: attach this machine to a server as a runner of one device class. Needs
only the device runtime (onnxruntime or coremltools) and Celery: no torch, no database."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from devices.jobs.lock import DEFAULT_LOCK
from exporters.errors import LatbenchError
from exporters.formats import device_class_choices, parse_device_class
from service.cli import check_url, fail


def runner(
    server: Annotated[str, typer.Option(help="server URL, e.g. http://lab-server:8000")],
    device_class: Annotated[
        str, typer.Option(help=f"what this machine measures as: {device_class_choices()}")
    ],
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="file holding the runner registration token (default: LATBENCH_RUNNER_TOKEN; "
            "never on the command line, where every user of the host reads it in ps)"
        ),
    ] = None,
    broker: Annotated[
        str | None,
        typer.Option(
            help="Redis URL as seen from this machine (default: the one the server announces)"
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="where fetched artifacts are kept, owner-only (default: ~/.cache/latbench/runner)"
        ),
    ] = None,
    cache_bytes: Annotated[
        int | None,
        typer.Option(min=2**20, help="bound of the cache (default 10 GiB); least recent dropped"),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="the name this runner registers under; a restart under the same name and "
            "token takes its server row back (default: HOST/DEVICE_CLASS)"
        ),
    ] = None,
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
    from devices.jobs.http_port import default_cache

    try:
        measured_as = parse_device_class(device_class, field="--device-class")
        server = check_url(server)
    except LatbenchError as error:
        raise fail(error) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run_agent(
        server=server,
        device_class=measured_as,
        registration_token=_token(token_file),
        broker_url=broker,
        cache=cache or default_cache(),
        **({"cache_bytes": cache_bytes} if cache_bytes else {}),
        lock_path=lock,
        name=name,
    )


def _token(path: Path | None) -> str | None:
    """The registration token from ``path``, else from the environment, else None (loopback)."""
    if path is None:
        return os.environ.get("LATBENCH_RUNNER_TOKEN") or None
    try:
        return path.read_text().strip() or None
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--token-file")


def register(app: typer.Typer) -> None:
    app.command()(runner)
