"""Untrusted work on the device (a measurement of an artifact someone uploaded) in a child process
of its own, bounded in memory and time: an artifact whose run never ends, or that allocates more
than the host has, fails its job with the reason and the next job runs.

The child is a fresh interpreter (never forked from a process that runs threads, and unlike
multiprocessing's spawn it never re-runs the caller's ``__main__``), dies with its parent
(``PR_SET_PDEATHSIG``), limits its own address space (``RLIMIT_AS``) and takes the host lock
itself, so the kernel releases the lock whichever way the child ends. It runs nothing but the
work; its progress readings come to the parent over a pipe. The parent waits on it only with a
bound: the lock wait and then the work each get ``timeout_s``; past either it kills the child.
"""

from __future__ import annotations

import logging
import os
import pickle
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

from devices.jobs.lock import host_lock
from devices.lifeline import die_with_parent
from exporters.errors import LatbenchError, RunnerError

log = logging.getLogger(__name__)
T = TypeVar("T")

_REAP_S = 10.0  # a killed child is gone within this; past it the parent stops waiting and logs


@dataclass(frozen=True)
class Limits:
    """What one measurement may use: ``memory_mb`` MiB of address space, ``timeout_s`` seconds
    (for the host lock, then again for the work)."""

    memory_mb: int = 8192
    timeout_s: float = 1800.0

    @classmethod
    def from_env(cls) -> Limits:
        """``LATBENCH_MEASURE_MEMORY_MB`` and ``LATBENCH_JOB_TIMEOUT_S``, the server's settings of
        the same names (a CLI run or a remote runner reads them from its environment)."""
        return cls(
            memory_mb=int(os.environ.get("LATBENCH_MEASURE_MEMORY_MB", cls.memory_mb)),
            timeout_s=float(os.environ.get("LATBENCH_JOB_TIMEOUT_S", cls.timeout_s)),
        )


def run_bounded(
    fn: Callable[..., T],
    *args: Any,
    limits: Limits,
    lock_path: Path,
    progress: Callable[..., None] | None = None,
    what: str = "measurement",
) -> T:
    """``fn(*args, progress=...)`` (picklable, as is its value) in a bounded child holding the
    host lock exclusively: its value, the latbench error it raised, or a RunnerError saying why
    it was stopped (time, memory, a signal)."""
    ours, theirs = socket.socketpair()
    command = [sys.executable, "-c", f"from {__name__} import main; main({theirs.fileno()})"]
    child = subprocess.Popen(command, pass_fds=(theirs.fileno(),))
    theirs.close()
    conn = Connection(ours.detach())
    try:
        conn.send((fn, args, limits.memory_mb, lock_path))
        return _follow(conn, child, limits, progress, what)
    finally:
        conn.close()
        if child.poll() is None:
            child.kill()
        try:
            child.wait(_REAP_S)
        except subprocess.TimeoutExpired:
            log.error("%s process %s did not end after SIGKILL", what, child.pid)


def _follow(
    receive: Connection,
    child: subprocess.Popen[bytes],
    limits: Limits,
    progress: Callable[..., None] | None,
    what: str,
) -> Any:
    """Read the child's messages until its outcome, each wait bounded by the current deadline."""
    deadline = time.monotonic() + limits.timeout_s
    waiting_for = "the host lock"
    while True:
        left = deadline - time.monotonic()
        try:
            message = receive.recv() if left > 0 and receive.poll(left) else None
        except (EOFError, OSError):  # the child died without its outcome
            try:
                child.wait(_REAP_S)
            except subprocess.TimeoutExpired:
                pass
            raise RunnerError(
                f"the {what} process died ({how_it_ended(child.returncode)}) under its "
                f"{limits.memory_mb} MiB memory limit (LATBENCH_MEASURE_MEMORY_MB)"
            ) from None
        if message is None:
            raise RunnerError(
                f"the {what} ran past {limits.timeout_s:g} s waiting for {waiting_for} and was "
                "stopped (LATBENCH_JOB_TIMEOUT_S)"
            )
        tag, value = message
        if tag == "locked":
            deadline, waiting_for = time.monotonic() + limits.timeout_s, "its end"
        elif tag == "progress":
            if progress is not None:
                progress(*value)
        elif tag == "ok":
            return value
        else:
            raise value


def how_it_ended(exitcode: int | None) -> str:
    """A child's end in words: the signal that killed it, or its exit code."""
    if exitcode is not None and exitcode < 0:
        return f"signal {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


def main(fd: int) -> None:
    """The child: read the work from the parent, run it, send the outcome back."""
    die_with_parent()
    send = Connection(fd)
    if os.getppid() == 1:  # the parent ended before the lifeline was set
        return
    fn, args, memory_mb, lock = send.recv()
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def report(*reading: Any) -> None:
        send.send(("progress", reading))

    try:
        with host_lock(lock, exclusive=True):
            send.send(("locked", None))
            outcome: tuple[str, Any] = ("ok", fn(*args, progress=report))
    except LatbenchError as exc:
        outcome = ("error", portable(exc))
    except Exception as exc:  # noqa: BLE001 - reported as the job's reason, not lost
        reason = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, MemoryError) or "alloc" in reason.lower():
            reason += (
                f" (out of memory under the {memory_mb} MiB limit: LATBENCH_MEASURE_MEMORY_MB)"
            )
        outcome = ("error", RunnerError(reason))
    send.send(outcome)
    send.close()


def portable(exc: LatbenchError, fallback: type[LatbenchError] = RunnerError) -> LatbenchError:
    """The error itself where it survives pickling, else a ``fallback`` with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any class that cannot cross the pipe
        return fallback(str(exc))
    return exc
