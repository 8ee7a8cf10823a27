"""Dispatch: how a job's export and measure steps reach a worker. Two backends behind one protocol
(``service.jobs.ports.Dispatcher``):
``local`` (the worker process, ``latbench worker``, takes queued jobs from the database and measures
on this host's CPU) and ``celery`` (Redis broker, an export queue and one queue per device class,
runners anywhere). An API process only hands a job over (``api_dispatcher``: with ``local`` the
job's row is the hand-over); the worker process runs the work (``worker_dispatcher``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.jobs.ports import Dispatcher, Sessions

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = ["Dispatcher", "api_dispatcher", "worker_dispatcher"]


def api_dispatcher(settings: Settings) -> Dispatcher:
    """An API process's: it sends work on and runs none (no export workers, no runner)."""
    if settings.dispatcher == "celery":
        from service.dispatch.celery_dispatch import CeleryDispatcher

        return CeleryDispatcher(settings.model_copy(update={"export_workers": 0}))
    from service.dispatch.local import InDatabase

    return InDatabase(settings)


def worker_dispatcher(settings: Settings, sessions: Sessions) -> Dispatcher:
    """The worker process's: the embedded runner and export, or the Celery export workers."""
    if settings.dispatcher == "celery":
        from service.dispatch.celery_dispatch import CeleryDispatcher

        return CeleryDispatcher(settings)
    from service.dispatch.local import LocalDispatcher

    return LocalDispatcher(settings, sessions)
