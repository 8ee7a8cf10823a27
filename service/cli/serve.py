"""``latbench serve``: the whole service as one command (the schema migrated once, N API processes
on the port, one worker process, supervised together: ``service.workers``); ``--no-worker``
starts the API processes alone, for a deployment that runs ``latbench worker`` apart.

Only the options given on the command line override the environment (``LATBENCH_*``, ``.env``):
an option left out never replaces a setting made there."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from service.cli import fail

# The worker's options, shared by `latbench serve` and `latbench worker` (None: not given).
DispatcherOption = Annotated[
    str | None,
    typer.Option(help="local (embedded runner) or celery (Redis broker, LATBENCH_BROKER_URL)"),
]
LocalRunnerOption = Annotated[
    bool | None,
    typer.Option(help="local dispatcher: export and measure on this host (LATBENCH_LOCAL_RUNNER)"),
]
ExportWorkersOption = Annotated[
    int | None,
    typer.Option(help="celery dispatcher: export worker processes (LATBENCH_EXPORT_WORKERS)"),
]


def service_settings(**overrides: Any) -> Any:
    """The settings from the environment, with the ``overrides`` that are not None over them;
    invalid settings are a usage error naming the cause."""
    from pydantic import ValidationError

    from exporters.errors import SpecError
    from service.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise fail(SpecError(exc.errors()[0]["msg"], field="settings")) from None


def serve(
    host: Annotated[str | None, typer.Option(help="bind address (LATBENCH_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (LATBENCH_PORT)")] = None,
    dispatcher: DispatcherOption = None,
    local_runner: LocalRunnerOption = None,
    export_workers: ExportWorkersOption = None,
    workers: Annotated[
        int | None,
        typer.Option(help="API processes on the port; 0: one per physical core (LATBENCH_WORKERS)"),
    ] = None,
    worker: Annotated[
        bool, typer.Option(help="start the worker process too (--no-worker: the API alone)")
    ] = True,
) -> None:
    """Run the profiling service (API, dashboard, and the worker that runs the jobs)."""
    import logging

    from exporters.errors import SpecError
    from service.db.engine import engine_for, upgrade
    from service.workers import (
        LOG_FORMAT,
        Part,
        Supervisor,
        api_main,
        reserve_port,
        worker_count,
        worker_main,
    )

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings = service_settings(
        host=host,
        port=port,
        dispatcher=dispatcher,
        local_runner=local_runner,
        export_workers=export_workers,
        workers=workers,
    )
    try:
        held = reserve_port(settings.host, settings.port)
    except OSError as exc:
        raise fail(
            SpecError(f"cannot listen on {settings.host}:{settings.port}: {exc}", field="port")
        ) from None
    engine = engine_for(settings)
    upgrade(engine)  # once, before any part starts
    engine.dispose()
    bound = held.getsockname()[1]
    parts = [Part(f"latbench-api-{n + 1}", api_main, (settings, bound)) for n in range(worker_count(settings))]  # fmt: skip
    if worker:
        parts.append(Part("latbench-worker", worker_main, (settings,)))
    with held:
        status = Supervisor(parts).run()
    raise typer.Exit(status)


def register(app: typer.Typer) -> None:
    app.command()(serve)
