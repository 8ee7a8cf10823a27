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
) -> None:
    """Run the profiling service (API, dashboard, dispatcher)."""
    import uvicorn
    from pydantic import ValidationError

    from exporters.errors import SpecError
    from service.app import create_app
    from service.settings import Settings

    overrides = {
        "host": host,
        "port": port,
        "dispatcher": dispatcher,
        "local_runner": local_runner,
        "export_workers": export_workers,
    }
    env = {f"LATBENCH_{k.upper()}": str(v) for k, v in overrides.items() if v is not None}
    os.environ.update(env)  # the export workers read the same settings
    try:
        settings = Settings()
    except ValidationError as exc:
        raise fail(SpecError(exc.errors()[0]["msg"], field="settings")) from None
    # Export workers start and stop with the app (its lifespan): uvicorn re-raises SIGTERM once
    # the app has shut down, so nothing after uvicorn.run would run.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


def register(app: typer.Typer) -> None:
    app.command()(serve)
