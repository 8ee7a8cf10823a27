"""Dispatch: how a job's export and measure steps reach a worker. Two backends behind one protocol
(``service.jobs.ports.Dispatcher``): ``local`` (a worker thread inside ``latbench serve``,
measuring on this host's CPU) and ``celery`` (Redis broker, an export queue and one queue per
device class, runners anywhere)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.jobs.ports import Dispatcher, Sessions

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = ["Dispatcher", "make_dispatcher"]


def make_dispatcher(settings: Settings, sessions: Sessions) -> Dispatcher:
    if settings.dispatcher == "celery":
        from service.dispatch.celery_dispatch import CeleryDispatcher

        return CeleryDispatcher(settings)
    from service.dispatch.local import LocalDispatcher

    return LocalDispatcher(settings, sessions)
