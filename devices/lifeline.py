"""Tie a process's life to its parent's, so nothing a server started outlives it, even a server
killed without the chance to stop its children (SIGKILL, OOM killer)."""

from __future__ import annotations

import ctypes
import logging
import signal

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when the thread that started it exits (no-op
    elsewhere: the shutdown path still ends the children there)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        log.debug("PR_SET_PDEATHSIG unavailable")
