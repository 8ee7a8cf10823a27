"""Dispatch: how a job's export and measure steps reach a worker. Two backends behind one protocol:
``local`` (a worker thread inside ``latbench serve``, measuring on this host's CPU) and ``celery``
(Redis broker, an export queue and one queue per device class, runners anywhere)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the job service imports the protocol; keep this module light
    from devices.jobs.port import JobTask
    from service.jobservice import Sessions
    from service.settings import Settings


class Dispatcher(Protocol):
    def submit(self, job_id: str, attempt: int) -> None:
        """Queue the job's export step; its measure step follows on a runner of its class."""

    def dispatch(self, task: JobTask) -> None:
        """Queue the device step of a job created exported (its artifacts already stored)."""

    def serves(self, device_class: str) -> bool:
        """Whether a job for this device class can ever be measured through this backend."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def make_dispatcher(settings: Settings, sessions: Sessions) -> Dispatcher:
    if settings.dispatcher == "celery":
        from service.dispatch.celery_dispatch import CeleryDispatcher

        return CeleryDispatcher(settings)
    from service.dispatch.local import LocalDispatcher

    return LocalDispatcher(settings, sessions)
