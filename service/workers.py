"""The processes of ``latbench serve``, one job each: N API processes on the one port and one worker
process, supervised together.

An API process (``api_main``) answers requests and takes no job work. The worker process
(``run_worker``, also ``latbench worker`` on its own) runs what must exist once: the reaper, the
recovery of unfinished jobs and the dispatcher's work (the embedded runner taking queued jobs from
the database, or the Celery export workers). ``latbench serve`` migrates the schema once, then
starts every part (spawned, never forked from a process that runs threads; each dies with it,
``PR_SET_PDEATHSIG``) and watches them: a part that ends on its own is started again
(``service.restarts``), unless it keeps dying right after its start, which stops the whole
service; SIGTERM or Ctrl-C stops every part (SIGTERM, then SIGKILL after STOP_GRACE_S).

A Python process answers about one core's worth of requests (one interpreter lock), so on a
multi-core host reads scale with processes, not threads (bench/load.py prints both).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

import psutil

from devices.lifeline import die_with_parent
from service.restarts import CANNOT_WORK, Restarts
from service.settings import Settings

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

log = logging.getLogger(__name__)

SPAWN = multiprocessing.get_context("spawn")
STOP_GRACE_S = 10.0
MAX_AUTO_WORKERS = 4  # each process holds torch and the zoo (for the work budget): ~0.5 GB
LOG_FORMAT = "%(levelname)s:     %(name)s: %(message)s"


def worker_count(settings: Settings) -> int:
    """``LATBENCH_WORKERS``, or for 0 one process per physical core (at most MAX_AUTO_WORKERS)."""
    if settings.workers:
        return settings.workers
    return max(1, min(MAX_AUTO_WORKERS, psutil.cpu_count(logical=False) or 1))


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket of its own for each process, all on one port (SO_REUSEPORT): the kernel spreads
    new connections evenly over them. On one shared socket the process that wakes first
    accepts a whole burst of connections, and its clients wait while the others idle."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048, reuse_port=True)


def reserve_port(host: str, port: int) -> socket.socket:
    """The port bound, not listening (no connection is ever routed to it), for the supervisor to
    hold: refuses a port taken by another program and resolves port 0 before any part starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _lifeline() -> bool:
    """Die with the supervisor; False when it already ended."""
    parent = os.getppid()
    die_with_parent(signal.SIGTERM)
    return os.getppid() == parent


def api_main(settings: Settings, port: int) -> None:
    """One API process: answers on ``port`` until SIGTERM (uvicorn's graceful shutdown)."""
    import uvicorn

    from service.app import create_app

    if not _lifeline():
        return
    sock = listening_socket(settings.host, port)
    app = create_app(settings, long_running=True, migrate=False)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="info")).run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C reaches every process of the terminal: shut down already
        pass


def worker_main(settings: Settings) -> None:
    if _lifeline():
        run_worker(settings, migrate=False)


def run_worker(settings: Settings, *, migrate: bool = True) -> None:
    """The worker process: dispatcher work, recovery and the reaper, until SIGTERM or SIGINT, or
    until its dispatcher fails (then exit status CANNOT_WORK: its supervisor stops the service
    rather than start it again; an orchestrator sees the status)."""
    from service import retention
    from service.db.engine import engine_for, make_sessionmaker, upgrade
    from service.dispatch import worker_dispatcher
    from service.dispatch.isolated import start_fork_server
    from service.dispatch.reaper import Reaper, recover, started_jobs

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    engine = engine_for(settings)
    if migrate:
        upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        retention.at_start(session, settings)
    start_fork_server()  # the export workers' server, started by this long-lived main thread
    dispatcher = worker_dispatcher(settings, sessions)
    reaper = Reaper(sessions, settings, dispatcher)
    interrupted = started_jobs(sessions)  # before this start's dispatcher takes any job
    dispatcher.start()  # the embedded runner registers first: recovery then sees it online
    failure: str | None = None
    try:
        requeued = recover(sessions, settings, dispatcher, interrupted)
        reaper.start()
        log.info(
            "worker started (%s dispatcher, %d job(s) requeued)", settings.dispatcher, requeued
        )
        while failure is None and not stop.wait(1.0):
            failure = dispatcher.failure()
    finally:
        reaper.stop()
        dispatcher.stop()
        engine.dispose()
        log.info("worker stopped")
    if failure is not None:
        log.error("the worker cannot work: %s", failure)
        raise SystemExit(CANNOT_WORK)


@dataclass
class Part:
    """One supervised process: what it runs, and how it has fared."""

    name: str
    target: Callable[..., None]
    args: tuple[Any, ...]
    process: BaseProcess | None = None
    started: float = 0.0
    restarts: Restarts = field(default_factory=Restarts)

    def start(self) -> None:
        self.process = SPAWN.Process(target=self.target, args=self.args, name=self.name)
        self.process.start()
        self.started = time.monotonic()


class Supervisor:
    """Starts ``parts``, starts again one that ends on its own, and stops them all on SIGTERM or
    SIGINT, or when one keeps dying at its start; ``run`` returns the exit status."""

    def __init__(self, parts: list[Part]) -> None:
        self.parts = parts
        self._stop = threading.Event()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        for part in self.parts:
            part.start()
        status = 0
        while not self._stop.is_set() and status == 0:
            sentinels = {p.process.sentinel: p for p in self.parts if p.process is not None}
            for ended in wait(list(sentinels), timeout=0.5):
                status = self._ended(sentinels[ended])
        self._stop_all()
        return status

    def _ended(self, part: Part) -> int:
        """Start ``part`` again (``service.restarts``), or 1 when it cannot start."""
        assert part.process is not None
        part.process.join(STOP_GRACE_S)  # it has ended: this only reaps it
        log.warning("%s ended (exit %s)", part.name, part.process.exitcode)
        if part.process.exitcode == CANNOT_WORK:
            log.error("%s cannot work (its log says why); stopping", part.name)
            return 1
        delay = part.restarts.ended(time.monotonic() - part.started)
        if delay is None:
            log.error("%s ended %d times right after its start; stopping", part.name,
                      part.restarts.quick_deaths)  # fmt: skip
            return 1
        if self._stop.wait(delay):
            return 0
        log.warning("starting %s again", part.name)
        part.start()
        return 0

    def _stop_all(self) -> None:
        """SIGTERM to each part (a graceful stop), SIGKILL to what outlives STOP_GRACE_S."""
        live = [p.process for p in self.parts if p.process is not None and p.process.is_alive()]
        for process in live:
            process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for process in live:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)
