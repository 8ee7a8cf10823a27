"""The distributed backend, server side: a job goes to the ``export`` queue; the export worker
(``python -m service.dispatch.export_worker``, started by this dispatcher for ``latbench serve``
or on its own) exports and forwards it to ``measure.<device class>``, where runners of that class
take it."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

from devices.jobs.broker import DEVICE_TASK, EXPORT_TASK, device_queue, export_queue, make_celery
from devices.jobs.port import JobTask
from service.dispatch.export_worker import WITH_PARENT, settings_env
from service.settings import Settings

log = logging.getLogger(__name__)

STOP_GRACE_S = 15.0
RESTART_DELAY_S = 1.0  # how soon an export worker that ended is started again


class CeleryDispatcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = make_celery(settings.broker_url)
        self.queue = export_queue(settings.queue_namespace)
        self.namespace = settings.queue_namespace
        self.worker_count = settings.export_workers
        self.workers: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._watch = threading.Thread(
            target=self._replace_ended, name="latbench-export-workers", daemon=True
        )

    def submit(self, job_id: str, attempt: int) -> None:
        self.app.send_task(EXPORT_TASK, args=[job_id, attempt], queue=self.queue)

    def dispatch(self, task: JobTask) -> None:
        queue = device_queue(task.device_class, self.namespace)
        self.app.send_task(DEVICE_TASK, args=[task.to_dict()], queue=queue)

    def serves(self, device_class: str) -> bool:
        """Any class: its runners may attach later; the job waits in its queue until then."""
        return True

    def start(self) -> None:
        """Start LATBENCH_EXPORT_WORKERS export workers (with this process's settings), and
        start one again when it ends (the kernel's OOM killer, a SIGKILL): the reaper requeues
        the job it was exporting, which would otherwise wait with no worker to take it. Each
        gets SIGTERM should this process die without stopping them."""
        self.workers = [self._spawn() for _ in range(self.worker_count)]
        if self.workers:
            self._watch.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "service.dispatch.export_worker", WITH_PARENT]
        return subprocess.Popen(command, env=settings_env(self.settings))

    def _replace_ended(self) -> None:
        while not self._stopping.wait(RESTART_DELAY_S):
            for n, worker in enumerate(self.workers):
                if worker.poll() is not None and not self._stopping.is_set():
                    log.warning("export worker %d ended (exit %s); starting another",
                                worker.pid, worker.returncode)  # fmt: skip
                    self.workers[n] = self._spawn()

    def stop(self) -> None:
        """SIGTERM to each worker (it ends its running export and exits), SIGKILL to any still
        there after STOP_GRACE_S: runs in the app's shutdown, before the server process exits."""
        self._stopping.set()
        if self._watch.is_alive():
            self._watch.join()
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        self.app.close()
