"""What travels from the server to a runner, and the names both sides agree on. Imports nothing
heavy: the runner agent on a device host (no torch, no SQLAlchemy) uses it too."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

EXPORT_TASK = "latbench.export"
MEASURE_TASK = "latbench.measure"


def export_queue(namespace: str = "") -> str:
    """``namespace`` separates deployments (or test runs) that share one Redis."""
    return f"{namespace}export"


def measure_queue(device_class: str, namespace: str = "") -> str:
    """One queue per device class: any runner of the class may take any of its jobs."""
    return f"{namespace}measure.{device_class}"


@dataclass(frozen=True)
class MeasureTask:
    """One job's measurement, as a runner needs it; travels as a JSON dict through the broker."""

    job_id: str
    attempt: int
    device_class: str
    format: str
    artifact_key: str
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
