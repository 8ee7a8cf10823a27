"""The distributed backend, server side: a job goes to the ``export`` queue; the export worker
(``python -m service.dispatch.export_worker``, started by this dispatcher for ``latbench serve``
or on its own) exports and forwards it to ``measure.<device class>``, where runners of that class
take it."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from devices.jobs.broker import DEVICE_TASK, EXPORT_TASK, device_queue, export_queue, make_celery
from devices.jobs.port import JobTask
from service.dispatch.export_worker import WITH_PARENT, settings_env
from service.restarts import Restarts
from service.settings import Settings

log = logging.getLogger(__name__)

STOP_GRACE_S = 15.0
POLL_S = 0.5  # how often the export workers are looked at


@dataclass
class _ExportWorker:
    """One export worker process, started again when it ends (``service.restarts``)."""

    process: subprocess.Popen[bytes]
    started: float
    restarts: Restarts = field(default_factory=Restarts)
    due: float | None = None  # when it is started again, once it has ended


class CeleryDispatcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = make_celery(settings.broker_url)
        self.queue = export_queue(settings.queue_namespace)
        self.namespace = settings.queue_namespace
        self.worker_count = settings.export_workers
        self.workers: list[_ExportWorker] = []
        self._failure: str | None = None
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

    def failure(self) -> str | None:
        return self._failure

    def start(self) -> None:
        """Start LATBENCH_EXPORT_WORKERS export workers (with this process's settings), and
        start one again when it ends (the kernel's OOM killer, a SIGKILL): the reaper requeues
        the job it was exporting, which would otherwise wait with no worker to take it. One
        that keeps dying at its start is the dispatcher's ``failure``. Each gets SIGTERM should
        this process die without stopping them."""
        self.workers = [_ExportWorker(self._spawn(), time.monotonic())
                        for _ in range(self.worker_count)]  # fmt: skip
        if self.workers:
            self._watch.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "service.dispatch.export_worker", WITH_PARENT]
        return subprocess.Popen(command, env=settings_env(self.settings))

    def _replace_ended(self) -> None:
        while not self._stopping.wait(POLL_S):
            now = time.monotonic()
            for worker in self.workers:
                if worker.due is None and worker.process.poll() is not None:
                    exit_code = worker.process.returncode
                    delay = worker.restarts.ended(now - worker.started)
                    if delay is None:
                        self._failure = (
                            f"an export worker ended {worker.restarts.quick_deaths} times right "
                            f"after its start (last exit {exit_code}); see its log above"
                        )
                        log.error("%s; no export worker is started again", self._failure)
                        return
                    log.warning("export worker %d ended (exit %s); starting another in %.0f s",
                                worker.process.pid, exit_code, delay)  # fmt: skip
                    worker.due = now + delay
                if worker.due is not None and now >= worker.due:
                    worker.process, worker.started, worker.due = self._spawn(), now, None

    def stop(self) -> None:
        """SIGTERM to each worker (it ends its running export and exits), SIGKILL to any still
        there after STOP_GRACE_S: runs in the app's shutdown, before the server process exits."""
        self._stopping.set()
        if self._watch.is_alive():
            self._watch.join()
        processes = [worker.process for worker in self.workers]
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.app.close()
