"""The embedded default: one worker thread in the server process runs each job's export and then
its measurement on this host's CPU, so there is nothing to install or start. One thread means an
export never overlaps a measurement here; the host lock extends that to other processes."""

from __future__ import annotations

import hashlib
import logging
import queue
import socket
import threading

from devices.settings import parse_settings
from exporters.artifacts import ArtifactStore
from exporters.errors import ConflictError, LatbenchError
from exporters.formats import DeviceClass, ExportFormat
from service import pipeline
from service.db import runners
from service.dispatch import steps
from service.dispatch.steps import Sessions
from service.dispatch.task import MeasureTask
from service.settings import Settings

log = logging.getLogger(__name__)


def local_runner_id() -> str:
    """Stable across restarts, so the embedded runner is one row, not one per start."""
    return "local-" + hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]


class LocalDispatcher:
    def __init__(self, settings: Settings, sessions: Sessions) -> None:
        self.settings = settings
        self.sessions = sessions
        self.device_class = DeviceClass.of_this_cpu()
        self._queue: queue.Queue[tuple[str, int] | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def submit(self, job_id: str, attempt: int) -> None:
        self._queue.put((job_id, attempt))

    def serves(self, device_class: str) -> bool:
        """This host's CPU class, and only while the embedded runner is on: with it off
        (--no-local-runner) nothing here would ever measure the job."""
        return self.settings.local_runner and device_class == self.device_class.value

    def start(self) -> None:
        if not self.settings.local_runner:
            return
        self._register()
        for target, name in (
            (self._work, "latbench-local-worker"),
            (self._heartbeat, "latbench-local-heartbeat"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def _register(self) -> None:
        from devices.host import host_facts

        with self.sessions() as session:
            runners.register_runner(
                session,
                device_class=self.device_class.value,
                description={**host_facts(), "embedded": True},
                runner_id=local_runner_id(),
            )

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval_s):
            with self.sessions() as session:
                row = session.get(runners.RunnerRow, local_runner_id())
                if row is not None:
                    runners.heartbeat(session, runner=row)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            job_id, attempt = item
            try:
                task = steps.export_step(
                    self.sessions,
                    job_id=job_id,
                    attempt=attempt,
                    store_root=self.settings.data_dir,
                    lock_path=self.settings.host_lock,
                )
                if task is not None:
                    self._measure(task)
            except Exception as exc:  # one broken job must neither stop the worker nor hang
                log.exception("job %s failed in the local worker", job_id)
                steps.fail(
                    self.sessions,
                    job_id=job_id,
                    attempt=attempt,
                    error=f"internal error: {type(exc).__name__}: {exc}",
                    runner_id=local_runner_id(),
                )

    def _measure(self, task: MeasureTask) -> None:
        if task.device_class != self.device_class.value:
            return  # stays queued for a runner of its class
        runner_id = local_runner_id()
        with self.sessions() as session:
            steps.claim(session, job_id=task.job_id, attempt=task.attempt, runner_id=runner_id)
        path = ArtifactStore(self.settings.data_dir).require(task.artifact_key).path
        try:
            measurement = pipeline.measure(
                path,
                device_class=self.device_class,
                fmt=ExportFormat(task.format),
                settings=parse_settings(task.settings),
                lock_path=self.settings.host_lock,
            )
        except LatbenchError as exc:
            steps.fail(
                self.sessions,
                job_id=task.job_id,
                attempt=task.attempt,
                error=str(exc),
                runner_id=runner_id,
            )
            return
        with self.sessions() as session:
            try:
                steps.complete(
                    session,
                    job_id=task.job_id,
                    attempt=task.attempt,
                    runner_id=runner_id,
                    measurement=measurement,
                )
            except ConflictError as exc:  # requeued or failed meanwhile: not ours to finish
                log.info("result of job %s dropped: %s", task.job_id, exc)
