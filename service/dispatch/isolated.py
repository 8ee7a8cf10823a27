"""Heavy work (an export) in child processes with an address-space limit, so a model too big for
the machine fails its job with a reason instead of taking the server down.

Children come from a fork server that has already imported the exporters (torch), so a cached
export costs a fork, not an import. Every child dies with its parent (``PR_SET_PDEATHSIG``; the
fork server itself exits when the process that started it does), and ``WorkerProcesses.stop``
ends the live ones at shutdown: no export outlives the service that asked for it."""

from __future__ import annotations

import logging
import multiprocessing
import resource
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from devices.jobs.bounded import how_it_ended, portable
from devices.lifeline import die_with_parent
from exporters.errors import LatbenchError

log = logging.getLogger(__name__)
T = TypeVar("T")
_REAP_S = 10.0  # a killed child is gone within this; the parent never waits longer

_CONTEXT = multiprocessing.get_context("forkserver")
# The fork server dies with its starter (lifeline first), then imports what every export needs
# (torch, timm, the ONNX exporter, the work budget) once.
_CONTEXT.set_forkserver_preload(
    [
        "service.dispatch.forkserver_lifeline",
        "exporters.export",
        "exporters.onnx",
        "exporters.budget",
        "timm",
    ]
)


def start_fork_server() -> None:
    """Start the fork server from the calling thread, which must outlive it: the server dies when
    the *thread* that started it exits (``PR_SET_PDEATHSIG`` fires on the parent thread's end),
    taking its children along. A process calls this from its main thread before any other thread
    runs work here; left to the first ``run``, a short-lived thread (a settling thread, an idle
    request thread) would start it and end it under a running child."""
    from multiprocessing import forkserver

    forkserver.ensure_running()  # spawns the server; its imports run while this thread goes on


class WorkerError(LatbenchError):
    """The work failed in its worker process; the message is the worker's own."""


class WorkerCrashedError(WorkerError):
    """The worker process died before answering (a signal, the memory limit): worth a retry."""


class WorkerStopped(Exception):
    """The service is shutting down: the work was abandoned, its job is left for recovery."""


class WorkerProcesses:
    """Runs functions in limited child processes and ends them all on ``stop``: each child may
    map ``memory_mb`` MiB and run ``timeout_s``; one that dies is replaced, ``tries`` in all."""

    def __init__(self, *, memory_mb: int, timeout_s: float, tries: int) -> None:
        if tries < 1:
            raise ValueError(f"tries must be at least 1, not {tries}")
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.tries = tries
        self._live: set[Any] = set()
        self._lock = threading.RLock()  # stop may run in a signal handler
        self._stopping = threading.Event()

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` (picklable, as is its value) in a child: its value, or WorkerError with
        its failure or when it ran past the time (then it is killed); WorkerCrashedError saying
        how the last child died when ``tries`` died; WorkerStopped during shutdown."""
        attempt = 1
        while True:
            try:
                return self._run_once(fn, args)
            except WorkerCrashedError as exc:
                if attempt >= self.tries:
                    raise WorkerCrashedError(
                        f"{exc}; gave up after {attempt} worker(s) died on it "
                        "(LATBENCH_MAX_ATTEMPTS)"
                    ) from None
                attempt += 1
                log.warning(
                    "worker died (%s); starting another (%d of %d)", exc, attempt, self.tries
                )

    def stop(self, grace_s: float = 5.0) -> None:
        """End every live child (SIGTERM, SIGKILL after ``grace_s``) and start no more."""
        self._stopping.set()
        with self._lock:
            children = list(self._live)
        for child in children:
            child.terminate()
        for child in children:
            child.join(grace_s)
            if child.is_alive():
                child.kill()
                child.join(_REAP_S)

    def _run_once(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        receive, send = _CONTEXT.Pipe(duplex=False)
        child = _CONTEXT.Process(
            target=_child,
            args=(send, fn, args, self.memory_mb),
            name="latbench-worker",
            daemon=True,
        )
        if self._stopping.is_set():
            raise WorkerStopped("the service is stopping")
        child.start()  # not under the lock: a first start waits for the fork server's imports
        with self._lock:
            self._live.add(child)
        if self._stopping.is_set():  # stop ran during the start: it may not have seen this child
            child.kill()
        send.close()
        answered, outcome = False, None
        try:
            answered = receive.poll(self.timeout_s)
            outcome = receive.recv() if answered else None
        except EOFError:  # the child died without answering
            outcome = None
        finally:
            receive.close()
            if child.is_alive():
                child.kill()
            child.join(_REAP_S)
            with self._lock:
                self._live.discard(child)
        if self._stopping.is_set():
            raise WorkerStopped("the service stopped during the work")
        if not answered:
            raise WorkerError(f"the worker ran past {self.timeout_s:g} s and was stopped")
        if outcome is None:
            raise WorkerCrashedError(
                f"the worker died ({how_it_ended(child.exitcode)}) under its {self.memory_mb} MiB memory "
                "limit (LATBENCH_EXPORT_MEMORY_MB)"
            )
        ok, value = outcome
        if not ok:
            raise value if isinstance(value, LatbenchError) else WorkerError(value)
        return value


def _child(send: Connection, fn: Callable[..., Any], args: tuple[Any, ...], memory_mb: int) -> None:
    die_with_parent()
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    note = f" (an export worker may use {memory_mb} MiB: LATBENCH_EXPORT_MEMORY_MB)"
    try:
        outcome: tuple[bool, Any] = (True, fn(*args))
    except LatbenchError as exc:  # its own class where it crosses the pipe (a SpecError: a 422)
        short = "allocate memory" in str(exc)
        outcome = (False, str(exc) + note if short else portable(exc, WorkerError))
    except MemoryError:
        outcome = (False, "out of memory" + note)
    except Exception as exc:  # noqa: BLE001 - reported as the job's reason, not lost
        outcome = (False, f"internal error in the worker: {type(exc).__name__}: {exc}")
    send.send(outcome)
    send.close()
