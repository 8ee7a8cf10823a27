"""The embedded default: the worker process (``latbench worker``, started by ``latbench serve``)
takes the queued jobs from the database, in submission order, and runs each one's export and then
its device step on this host's CPU, so there is nothing to install or start. An API process only
creates the job's row (``InDatabase``): no pipe between processes, and a job submitted while the
worker is down waits for it. The device step is ``devices.jobs.execute.run_task`` through
``DatabasePort``, as a remote runner runs it through the HTTP port; the measurement itself runs in
a bounded child (``devices.jobs.bounded``). One thread means an export never overlaps a
measurement here; the host lock extends that to other processes."""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError

from devices.jobs.bounded import Limits
from devices.jobs.execute import run_task
from devices.jobs.kinds import server_kinds
from devices.jobs.port import Host, JobTask
from exporters.artifacts import ArtifactStore
from exporters.errors import ConflictError
from exporters.formats import DeviceClass
from service.db import runners
from service.db.jobs import JobState
from service.db.tables import JobRow
from service.dispatch import isolated
from service.jobs import steps
from service.jobs.ports import Sessions
from service.settings import Settings

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the worker looks for queued jobs when nothing woke it
BATCH = 16  # queued jobs read per look


def local_runner_id() -> str:
    """Stable across restarts, so the embedded runner is one row, not one per start."""
    return "local-" + hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]


class DatabasePort:
    """The job port of the embedded runner: the job service's functions over the server's own
    database and artifact store, each step in a session of its own."""

    def __init__(self, sessions: Sessions, store_root: Path, runner_id: str) -> None:
        self.sessions = sessions
        self.store = ArtifactStore(store_root)
        self.runner_id = runner_id

    def claim(self, task: JobTask) -> bool:
        with self.sessions() as session:
            try:
                steps.claim(
                    session, job_id=task.job_id, attempt=task.attempt, runner_id=self.runner_id
                )
            except ConflictError:
                return False
        return True

    def fetch_artifact(self, task: JobTask, key: str) -> Path:
        return self.store.require(key).path

    def post_result(self, task: JobTask, result: BaseModel) -> None:
        with self.sessions() as session:
            steps.complete(
                session,
                job_id=task.job_id,
                attempt=task.attempt,
                runner_id=self.runner_id,
                result=result,
            )

    def post_failure(self, task: JobTask, error: str) -> None:
        steps.fail(
            self.sessions,
            job_id=task.job_id,
            attempt=task.attempt,
            error=error,
            runner_id=self.runner_id,
        )


def serves_locally(settings: Settings, device_class: str) -> bool:
    """This host's CPU class, and only while the embedded runner is on: with it off
    (--no-local-runner) nothing here would ever measure the job."""
    return settings.local_runner and device_class == DeviceClass.of_this_cpu().value


class InDatabase:
    """An API process's dispatcher for the embedded default: the job's row, written by the
    submission, is all the worker process needs; nothing more is sent."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def submit(self, job_id: str, attempt: int) -> None:
        """Nothing to send: the worker reads queued jobs from the database."""

    def dispatch(self, task: JobTask) -> None:
        """Nothing to send: the worker reads queued jobs from the database."""

    def serves(self, device_class: str) -> bool:
        return serves_locally(self.settings, device_class)

    def failure(self) -> str | None:
        return None

    def start(self) -> None: ...

    def stop(self) -> None: ...


class LocalDispatcher:
    """The worker process's: one thread polls the database for queued jobs and runs them;
    ``submit`` and ``dispatch`` (the reaper sending a job again, recovery) only wake it."""

    def __init__(self, settings: Settings, sessions: Sessions) -> None:
        self.settings = settings
        self.sessions = sessions
        self.device_class = DeviceClass.of_this_cpu()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._workers = steps.export_workers(settings)

    def submit(self, job_id: str, attempt: int) -> None:
        self._wake.set()

    def dispatch(self, task: JobTask) -> None:
        self._wake.set()

    def serves(self, device_class: str) -> bool:
        return serves_locally(self.settings, device_class)

    def failure(self) -> str | None:
        """None: each export and measurement runs in a bounded child of its own, and a child
        that dies fails its job, not the dispatcher."""
        return None

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
        """End the export worker process of a running job (its job is queued again on the next
        start) and the threads; a running measurement's child dies with this process."""
        self._stop.set()
        self._workers.stop()
        self._wake.set()
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
            runners.beat(self.sessions, runner_id=local_runner_id())

    def _queued(self) -> list[tuple[str, int]]:
        """The oldest queued jobs this worker can take: to export (any class: a server-side kind
        runs here too), exported for this host's class, or exported of a server-side kind (its
        worker stopped before it ran: ``steps.export_step`` runs it again)."""
        query = (
            select(JobRow.id, JobRow.attempt)
            .where(
                JobRow.state == JobState.QUEUED.value,
                or_(
                    JobRow.artifact_key.is_(None),
                    JobRow.device_class == self.device_class.value,
                    JobRow.kind.in_(server_kinds()),
                ),
            )
            .order_by(JobRow.created_at)
            .limit(BATCH)
        )
        with self.sessions() as session:
            return [(row.id, row.attempt) for row in session.execute(query)]

    def _work(self) -> None:
        port = DatabasePort(self.sessions, self.settings.data_dir, local_runner_id())
        host = Host(
            lock_path=self.settings.host_lock,
            limits=Limits(self.settings.measure_memory_mb, self.settings.job_timeout_s),
        )
        while not self._stop.is_set():
            self._wake.clear()
            try:
                waiting = self._queued()
            except SQLAlchemyError as exc:  # the database is away: look again later
                log.warning("could not read the queue: %s", str(exc).splitlines()[0])
                waiting = []
            for job_id, attempt in waiting:
                if self._stop.is_set() or not self._run(port, host, job_id, attempt):
                    return
            if not waiting:
                self._wake.wait(POLL_S)

    def _run(self, port: DatabasePort, host: Host, job_id: str, attempt: int) -> bool:
        """One job's export and device step; False when the worker is stopping."""
        try:
            task = steps.export_step(
                self.sessions,
                job_id=job_id,
                attempt=attempt,
                store_root=self.settings.data_dir,
                lock_path=self.settings.host_lock,
                workers=self._workers,
                beat_s=self.settings.heartbeat_interval_s,
            )  # an exported job: its task, without exporting again
            if task is not None and task.device_class == self.device_class.value:
                run_task(port, task, host)
        except isolated.WorkerStopped:
            return False  # shutting down: the job stays unfinished and is queued on next start
        except Exception as exc:  # one broken job must neither stop the worker nor hang
            log.exception("job %s failed in the local worker", job_id)
            self._fail(job_id, attempt, f"internal error: {type(exc).__name__}: {exc}")
        return True

    def _fail(self, job_id: str, attempt: int, error: str) -> None:
        """Record the failure; when the database is what failed, the job is left to the reaper's
        timeout and the worker goes on with the next job (it must outlive a database outage)."""
        try:
            steps.fail(
                self.sessions,
                job_id=job_id,
                attempt=attempt,
                error=error,
                runner_id=local_runner_id(),
            )
        except SQLAlchemyError:
            log.exception("failure of job %s not recorded; its timeout will end it", job_id)
