"""``latbench serve``: the API with its dispatcher. On the default (local) dispatcher that includes
a runner for this machine's CPU; with ``--dispatcher celery`` it also starts export workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from functools import partial
from typing import Annotated

import typer

from service.cli import fail

EXPORT_STOP_GRACE_S = 15.0


def serve(
    host: Annotated[str | None, typer.Option(help="bind address (LATBENCH_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (LATBENCH_PORT)")] = None,
    dispatcher: Annotated[
        str | None,
        typer.Option(help="local (embedded worker) or celery (Redis broker, LATBENCH_BROKER_URL)"),
    ] = None,
    local_runner: Annotated[
        bool, typer.Option(help="local dispatcher: export and measure on this host")
    ] = True,
    export_workers: Annotated[
        int, typer.Option(help="celery dispatcher: export worker processes to start beside the API")
    ] = 1,
) -> None:
    """Run the profiling service (API, dashboard, dispatcher)."""
    import uvicorn
    from pydantic import ValidationError

    from exporters.errors import SpecError
    from service.app import create_app
    from service.settings import Settings

    overrides = {"host": host, "port": port, "dispatcher": dispatcher, "local_runner": local_runner}
    env = {f"LATBENCH_{k.upper()}": str(v) for k, v in overrides.items() if v is not None}
    os.environ.update(env)  # the export workers read the same settings
    try:
        settings = Settings()
    except ValidationError as exc:
        raise fail(SpecError(exc.errors()[0]["msg"], field="settings")) from None
    workers = _start_export_workers(export_workers) if settings.dispatcher == "celery" else []
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    finally:
        _stop_export_workers(workers)


def _start_export_workers(count: int) -> list[subprocess.Popen[bytes]]:
    """Workers that get SIGTERM should this process die without stopping them (SIGKILL)."""
    from service.dispatch.isolated import die_with_parent

    command = [sys.executable, "-m", "service.dispatch.export_worker"]
    term = partial(die_with_parent, signal.SIGTERM)
    return [subprocess.Popen(command, preexec_fn=term) for _ in range(count)]  # noqa: PLW1509


def _stop_export_workers(
    workers: list[subprocess.Popen[bytes]], grace_s: float = EXPORT_STOP_GRACE_S
) -> None:
    """SIGTERM to each (a worker ends its running export and exits), SIGKILL to any still there
    after ``grace_s``: none outlives the server, however busy."""
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def register(app: typer.Typer) -> None:
    app.command()(serve)
