"""The distributed backend, server side: a job goes to the ``export`` queue; the export worker
(``python -m service.dispatch.export_worker``, started by this dispatcher for ``latbench serve``
or on its own) exports and forwards it to ``measure.<device class>``, where runners of that class
take it."""

from __future__ import annotations

import subprocess
import sys

from devices.jobs.broker import DEVICE_TASK, EXPORT_TASK, device_queue, export_queue, make_celery
from devices.jobs.port import JobTask
from service.dispatch.export_worker import WITH_PARENT, settings_env
from service.settings import Settings

STOP_GRACE_S = 15.0


class CeleryDispatcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = make_celery(settings.broker_url)
        self.queue = export_queue(settings.queue_namespace)
        self.namespace = settings.queue_namespace
        self.worker_count = settings.export_workers
        self.workers: list[subprocess.Popen[bytes]] = []

    def submit(self, job_id: str, attempt: int) -> None:
        self.app.send_task(EXPORT_TASK, args=[job_id, attempt], queue=self.queue)

    def dispatch(self, task: JobTask) -> None:
        queue = device_queue(task.device_class, self.namespace)
        self.app.send_task(DEVICE_TASK, args=[task.to_dict()], queue=queue)

    def serves(self, device_class: str) -> bool:
        """Any class: its runners may attach later; the job waits in its queue until then."""
        return True

    def start(self) -> None:
        """Start LATBENCH_EXPORT_WORKERS export workers (with this process's settings); each gets
        SIGTERM should this process die without stopping them."""
        command = [sys.executable, "-m", "service.dispatch.export_worker", WITH_PARENT]
        env = settings_env(self.settings)
        self.workers = [subprocess.Popen(command, env=env) for _ in range(self.worker_count)]

    def stop(self) -> None:
        """SIGTERM to each worker (it ends its running export and exits), SIGKILL to any still
        there after STOP_GRACE_S: runs in the app's shutdown, before the server process exits."""
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        self.app.close()
