"""What the job core needs from outside it: a dispatcher (how a job's export and device steps
reach a worker; ``service.dispatch`` has the local and Celery ones) and sessions of the server's
database. The core calls these; they call the core's steps, never the reverse import."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from devices.jobs.port import JobTask

Sessions = Callable[[], Session]


class Dispatcher(Protocol):
    def submit(self, job_id: str, attempt: int) -> None:
        """Queue the job's export step; its measure step follows on a runner of its class."""

    def dispatch(self, task: JobTask) -> None:
        """Queue the device step of a job created exported (its artifacts already stored)."""

    def serves(self, device_class: str) -> bool:
        """Whether a job for this device class can ever be measured through this backend."""

    def failure(self) -> str | None:
        """Why this backend can no longer work (a process it needs keeps dying at its start):
        the worker process stops on it (``service.restarts.CANNOT_WORK``). None while it works."""

    def start(self) -> None: ...

    def stop(self) -> None: ...
