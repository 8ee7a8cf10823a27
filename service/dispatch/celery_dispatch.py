"""The distributed backend, server side: a job goes to the ``export`` queue; the export worker
(``python -m service.dispatch.export_worker``, started by ``latbench serve`` or on its own) exports
and forwards it to ``measure.<device class>``, where runners of that class take it."""

from __future__ import annotations

from devices.jobs.broker import EXPORT_TASK, export_queue, make_celery
from service.settings import Settings


class CeleryDispatcher:
    def __init__(self, settings: Settings) -> None:
        self.app = make_celery(settings.broker_url)
        self.queue = export_queue(settings.queue_namespace)

    def submit(self, job_id: str, attempt: int) -> None:
        self.app.send_task(EXPORT_TASK, args=[job_id, attempt], queue=self.queue)

    def serves(self, device_class: str) -> bool:
        """Any class: its runners may attach later; the job waits in its queue until then."""
        return True

    def start(self) -> None:
        """Nothing to start in-process: the workers are their own processes."""

    def stop(self) -> None:
        self.app.close()
