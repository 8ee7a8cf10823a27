"""``latbench worker``: the worker process alone (the reaper, the recovery of unfinished jobs, the
export workers and the embedded runner), for a deployment that runs the API apart
(``latbench serve --no-worker``); ``latbench serve`` starts one itself."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.serve import (
    DispatcherOption,
    ExportWorkersOption,
    LocalRunnerOption,
    service_settings,
)


def worker(
    dispatcher: DispatcherOption = None,
    local_runner: LocalRunnerOption = None,
    export_workers: ExportWorkersOption = None,
    migrate: Annotated[
        bool, typer.Option(help="migrate the schema first (--no-migrate: the API process does)")
    ] = True,
) -> None:
    """Run the jobs of a latbench service: export, measure, time out, recover."""
    from service.workers import run_worker

    settings = service_settings(
        dispatcher=dispatcher, local_runner=local_runner, export_workers=export_workers
    )
    run_worker(settings, migrate=migrate)


def register(app: typer.Typer) -> None:
    app.command()(worker)
