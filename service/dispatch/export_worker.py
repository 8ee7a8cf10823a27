"""The export worker of the Celery backend: takes ``export`` tasks, runs the export step against
the server's database and artifact store, and forwards the job to its device class's queue.
Run it as ``python -m service.dispatch.export_worker`` with the server's LATBENCH_* settings."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from devices.jobs.broker import (
    DEVICE_TASK,
    EXPORT_TASK,
    device_queue,
    export_queue,
    make_celery,
    run_worker,
)
from devices.lifeline import die_with_parent
from service.db.engine import engine_for, make_sessionmaker
from service.jobs import steps
from service.settings import Settings, get_settings

WITH_PARENT = "--with-parent"


def settings_env(settings: Settings) -> dict[str, str]:
    """This environment with ``settings`` written over its LATBENCH_* values: an export worker a
    server starts runs with the server's settings, its command-line options included."""
    env = dict(os.environ)
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            text = value if isinstance(value, str) else json.dumps(value)
            env[f"LATBENCH_{name.upper()}"] = text
    return env


def build_app(settings: Settings) -> Any:
    """The Celery app with the export task; on the worker's shutdown the export process of the
    running task is ended (its job is queued again when the server next starts) and the
    database connections are closed."""
    from celery import signals

    app = make_celery(settings.broker_url)
    engine = engine_for(settings)
    sessions = make_sessionmaker(engine)
    workers = steps.export_workers(settings)

    @signals.worker_shutting_down.connect(weak=False)
    def _end_exports(**_: Any) -> None:
        workers.stop()

    @signals.worker_shutdown.connect(weak=False)
    def _close_database(**_: Any) -> None:
        engine.dispose()

    @app.task(name=EXPORT_TASK)
    def export_job(job_id: str, attempt: int) -> None:
        task = steps.export_step(
            sessions,
            job_id=job_id,
            attempt=attempt,
            store_root=settings.data_dir,
            lock_path=settings.host_lock,
            workers=workers,
            beat_s=settings.heartbeat_interval_s,
        )
        if task is not None:
            app.send_task(
                DEVICE_TASK,
                args=[task.to_dict()],
                queue=device_queue(task.device_class, settings.queue_namespace),
            )

    return app


def main() -> None:
    """``--with-parent``: started by a server, so it ends (SIGTERM, a clean stop) when the server
    does, even one killed without stopping it."""
    if WITH_PARENT in sys.argv[1:]:
        parent = os.getppid()
        die_with_parent(signal.SIGTERM)
        if os.getppid() != parent:  # the server died before the request took effect
            return
    settings = get_settings()
    app = build_app(settings)
    run_worker(app, queue=export_queue(settings.queue_namespace), hostname="export@%h")


if __name__ == "__main__":
    main()
