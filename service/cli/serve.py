"""``latbench serve``: the API with its dispatcher. On the default (local) dispatcher that includes
a runner for this machine's CPU; with ``--dispatcher celery`` it also starts export workers."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from service.cli import fail


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
    workers: Annotated[
        int | None,
        typer.Option(help="API processes on the port; 0: one per physical core (LATBENCH_WORKERS)"),
    ] = None,
) -> None:
    """Run the profiling service (API, dashboard, dispatcher)."""
    import uvicorn
    from pydantic import ValidationError

    from exporters.errors import SpecError
    from service.app import create_app
    from service.settings import Settings
    from service.workers import Replicas, listening_socket, worker_count

    overrides = {
        "host": host,
        "port": port,
        "dispatcher": dispatcher,
        "local_runner": local_runner,
        "export_workers": export_workers,
        "workers": workers,
    }
    env = {f"LATBENCH_{k.upper()}": str(v) for k, v in overrides.items() if v is not None}
    os.environ.update(env)  # the export workers read the same settings
    try:
        settings = Settings()
    except ValidationError as exc:
        raise fail(SpecError(exc.errors()[0]["msg"], field="settings")) from None
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as exc:
        raise fail(
            SpecError(f"cannot listen on {settings.host}:{settings.port}: {exc}", field="port")
        ) from None
    replicas = Replicas(settings, sock.getsockname()[1], worker_count(settings) - 1)
    # Replicas and export workers start and stop with the app (its lifespan): uvicorn re-raises
    # SIGTERM once the app has shut down, so nothing after the server's run would run.
    app = create_app(settings, long_running=True, replicas=replicas)
    uvicorn.Server(uvicorn.Config(app, log_level="info")).run(sockets=[sock])


def register(app: typer.Typer) -> None:
    app.command()(serve)
