"""Settling a long-running API process: load once, before traffic needs it, what requests would load
lazily, then take everything alive out of the cyclic garbage collector's reach.

Loaded lazily, torch and the timm zoo (the work budget of POST /profile) and the predictors
(GET /devices; read from package data, never fitted here)
cost the request that first needs them, and afterwards every full collection walks their objects:
~100-250 ms on a 2-core host during which no request is answered, which was the p99 of every read
under load (issue 11). ``gc.freeze`` moves the objects alive into the permanent generation, which
collections skip; they are still freed when their last reference goes, only cycles among them are
never collected (the loaded modules are alive for the process's life anyway).
"""

from __future__ import annotations

import gc
import logging
import threading
from typing import TYPE_CHECKING

from service.settings import Settings

if TYPE_CHECKING:
    from service.dispatch.isolated import WorkerProcesses

log = logging.getLogger(__name__)


def settle(settings: Settings, checkers: WorkerProcesses | None = None) -> None:
    """``checkers``: started once (their fork server imports torch: seconds), so the first
    upload or new spec is not what waits for it."""
    import exporters.budget  # noqa: F401 - torch and the zoo, for the work budget
    from service.predict.job import predictors

    if checkers is not None:
        checkers.run(int)
    predictors(settings.data_dir)
    gc.collect()
    gc.freeze()
    log.info("settled: %d objects frozen", gc.get_freeze_count())


def settle_in_background(
    settings: Settings, checkers: WorkerProcesses | None = None
) -> threading.Thread:
    """The server answers meanwhile; a request that needs a predictor reads it itself."""
    thread = threading.Thread(
        target=settle,
        args=(settings, checkers),
        name="settle",
        daemon=True,
    )
    thread.start()
    return thread
