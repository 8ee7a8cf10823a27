"""Run one piece of heavy work (an export) in a child process with an address-space limit, so a
model too big for the machine fails its job with a reason instead of taking the server down.

Children come from a fork server that has already imported the exporters (torch), so a cached
export costs a fork, not an import. Every child dies with its parent (``PR_SET_PDEATHSIG``; the
fork server itself exits when the process that started it does), and ``stop_all`` ends the live
ones at shutdown: no export outlives the service that asked for it."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import resource
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from exporters.errors import LatbenchError

log = logging.getLogger(__name__)
T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["exporters.export"])
_live: set[Any] = set()
_lock = threading.Lock()
_stopping = threading.Event()


class WorkerError(LatbenchError):
    """The work failed in its worker process; the message is the worker's own."""


class WorkerCrashedError(WorkerError):
    """The worker process died before answering (a signal, the memory limit): worth a retry."""


class WorkerStopped(Exception):
    """The service is shutting down: the work was abandoned, its job is left for recovery."""


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent exits (no-op elsewhere)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the shutdown path still ends children
        log.debug("PR_SET_PDEATHSIG unavailable")


def run_isolated(fn: Callable[..., T], *args: Any, memory_mb: int, timeout_s: float) -> T:
    """``fn(*args)`` in a child limited to ``memory_mb`` MiB of address space; its return value
    (picklable), or WorkerError with its failure, WorkerCrashedError when it died, WorkerError
    when it ran past ``timeout_s`` (then it is killed), WorkerStopped during shutdown."""
    if _stopping.is_set():
        raise WorkerStopped("the service is stopping")
    receive, send = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(
        target=_child, args=(send, fn, args, memory_mb), name="latbench-export", daemon=True
    )
    with _lock:
        child.start()
        _live.add(child)
    send.close()
    try:
        answered = receive.poll(timeout_s)
        outcome = receive.recv() if answered else None
    except EOFError:  # the child died without answering
        outcome = None
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join()
        with _lock:
            _live.discard(child)
    if _stopping.is_set():
        raise WorkerStopped("the service stopped during the work")
    if outcome is None and answered is False:
        raise WorkerError(f"the export worker ran past {timeout_s:g} s and was stopped")
    if outcome is None:
        raise WorkerCrashedError(
            f"the export worker died ({_how(child.exitcode)}) under its {memory_mb} MiB "
            "memory limit (LATBENCH_EXPORT_MEMORY_MB)"
        )
    ok, value = outcome
    if not ok:
        raise WorkerError(value)
    return value


def stop_all(timeout_s: float = 5.0) -> None:
    """End every live worker (SIGTERM, then SIGKILL after ``timeout_s``) and start no more."""
    _stopping.set()
    with _lock:
        children = list(_live)
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout_s)
        if child.is_alive():
            child.kill()
            child.join()


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"signal {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


def _child(send: Connection, fn: Callable[..., Any], args: tuple[Any, ...], memory_mb: int) -> None:
    die_with_parent()
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        outcome: tuple[bool, Any] = (True, fn(*args))
    except LatbenchError as exc:
        outcome = (False, str(exc))
    except MemoryError:
        message = (
            f"out of memory: the export needs more than the {memory_mb} MiB an export worker "
            "may use (LATBENCH_EXPORT_MEMORY_MB)"
        )
        outcome = (False, message)
    except Exception as exc:  # noqa: BLE001 - reported as the job's reason, not lost
        outcome = (False, f"internal error in the export worker: {type(exc).__name__}: {exc}")
    send.send(outcome)
    send.close()
