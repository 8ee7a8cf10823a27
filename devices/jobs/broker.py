"""The Celery names both sides agree on (task names, queues) and how their workers run. Imports
nothing heavy: the runner agent on a device host (no torch, no SQLAlchemy) uses it too."""

from __future__ import annotations

from typing import Any

EXPORT_TASK = "latbench.export"
DEVICE_TASK = "latbench.measure"  # the name stays: queued messages of older servers


def export_queue(namespace: str = "") -> str:
    """``namespace`` separates deployments (or test runs) that share one Redis."""
    return f"{namespace}export"


def device_queue(device_class: str, namespace: str = "") -> str:
    """One queue per device class: any runner of the class may take any of its jobs."""
    return f"{namespace}measure.{device_class}"


def run_worker(app: Any, *, queue: str, hostname: str) -> None:
    """Consume ``queue`` one task at a time in this process (solo pool: a runner's measurement
    runs in the process that heart-beats, and is never shared with a second task)."""
    app.worker_main(
        ["worker", "--queues", queue, "--pool", "solo", "--concurrency", "1",
         "--prefetch-multiplier", "1", "--without-gossip", "--without-mingle",
         "--loglevel", "INFO", "--hostname", hostname]
    )  # fmt: skip


def make_celery(broker_url: str) -> Any:
    """A Celery app whose workers take one task at a time and acknowledge it only when done, so a
    measurement never shares its device and a task a dead worker held is delivered again."""
    from celery import Celery

    app = Celery("latbench", broker=broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app
