"""More API processes on the one port (``latbench serve --workers N``).

A Python process answers about one core's worth of requests (one interpreter lock), so on a
multi-core host reads scale with processes, not threads (bench/load.py prints both). The process
``latbench serve`` runs stays the only one that holds what must exist once: the migrations, the
reaper, the recovery of unfinished jobs and the dispatcher (the embedded runner and the export
workers). The others, replicas, only answer requests on the same port; what they submit to the
embedded dispatcher comes back to the first process over a pipe each (``Relay``), and with Celery
they send to the broker themselves. Replicas are spawned (never forked from a process that runs
threads), end with the first process even when it is killed, and are stopped by its shutdown.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

import psutil

from devices.jobs.port import JobTask
from service.dispatch.local import serves_locally
from service.settings import Settings

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from service.dispatch import Dispatcher

log = logging.getLogger(__name__)

SPAWN = multiprocessing.get_context("spawn")
STOP_GRACE_S = 10.0
RESTART_DELAY_S = 1.0
MAX_AUTO_WORKERS = 4  # each process holds torch and the zoo (for the work budget): ~0.5 GB


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


class Relay:
    """A replica's dispatcher for the embedded default: hands each job to the first process's
    dispatcher, which runs the embedded worker. Were the first process gone, the job stays
    queued in the database and its recovery queues it when the service starts again."""

    def __init__(self, settings: Settings, conn: Connection) -> None:
        self.settings = settings
        self.conn = conn
        self._lock = threading.Lock()  # routes run in threads; a Connection is not thread-safe

    def submit(self, job_id: str, attempt: int) -> None:
        self._send(("submit", job_id, attempt))

    def dispatch(self, task: JobTask) -> None:
        self._send(("dispatch", task.to_dict()))

    def serves(self, device_class: str) -> bool:
        return serves_locally(self.settings, device_class)

    def start(self) -> None:
        """Nothing to start: the first process runs the work."""

    def stop(self) -> None:
        self.conn.close()

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            with self._lock:
                self.conn.send(message)
        except OSError:
            log.exception("the first process is gone; %s waits for the next start", message[1])


def replica_dispatcher(settings: Settings, conn: Connection) -> Dispatcher:
    if settings.dispatcher == "celery":
        from service.dispatch.celery_dispatch import CeleryDispatcher

        return CeleryDispatcher(settings.model_copy(update={"export_workers": 0}))
    return Relay(settings, conn)


def _replica_main(settings: Settings, port: int, conn: Connection) -> None:
    import os

    import uvicorn

    from service.app import create_app
    from devices.lifeline import die_with_parent

    die_with_parent(signal.SIGTERM)
    if os.getppid() == 1:  # the first process ended before the lifeline was set
        return
    sock = listening_socket(settings.host, port)
    app = create_app(settings, replica_dispatcher(settings, conn), long_running=True, replica=True)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="info")).run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C reaches every process of the terminal: shut down already
        pass


class Replicas:
    """``count`` replica processes on ``port``, started and stopped by the first process's
    lifespan; one thread relays their submissions to its dispatcher and starts another replica
    in place of one that ended on its own (crashed, killed), after RESTART_DELAY_S."""

    def __init__(self, settings: Settings, port: int, count: int) -> None:
        self.settings = settings
        self.port = port
        self.count = count
        self.processes: list[BaseProcess] = []
        self._conns: list[Connection] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the relay's restarts against stop()
        self._thread: threading.Thread | None = None

    def start(self, dispatcher: Dispatcher) -> None:
        for index in range(self.count):
            process, conn = self._spawn(index)
            self.processes.append(process)
            self._conns.append(conn)
        if self.count:
            self._thread = threading.Thread(
                target=self._relay, args=(dispatcher,), name="latbench-relay", daemon=True
            )
            self._thread.start()

    def _spawn(self, index: int) -> tuple[BaseProcess, Connection]:
        ours, theirs = SPAWN.Pipe()
        process = SPAWN.Process(
            target=_replica_main,
            args=(self.settings, self.port, theirs),
            name=f"latbench-api-{index + 1}",
            daemon=True,
        )
        process.start()
        theirs.close()
        return process, ours

    def _relay(self, dispatcher: Dispatcher) -> None:
        while not self._stop.is_set():
            for conn in wait(self._conns, timeout=0.5):
                try:
                    kind, *args = conn.recv()
                except (EOFError, OSError):  # that replica ended
                    self._restart(self._conns.index(conn))
                    continue
                try:
                    if kind == "submit":
                        dispatcher.submit(*args)
                    else:
                        dispatcher.dispatch(JobTask(**args[0]))
                except Exception:  # one failed hand-over must not end the relay for everyone
                    log.exception("could not hand over %s from a replica", args[0])

    def _restart(self, index: int) -> None:
        """Another replica in place of one that ended, unless the service is stopping (the
        delay keeps a replica that cannot start from being restarted in a tight loop)."""
        if self._stop.wait(RESTART_DELAY_S):
            return
        with self._lock:
            if self._stop.is_set():
                return
            ended = self.processes[index]
            ended.join(timeout=5)
            log.warning("API process %s ended (exit %s); starting another", ended.name,
                        ended.exitcode)  # fmt: skip
            self._conns[index].close()
            self.processes[index], self._conns[index] = self._spawn(index)

    def stop(self) -> None:
        """SIGTERM each replica (uvicorn's graceful shutdown), SIGKILL what outlives the grace."""
        self._stop.set()
        with self._lock:
            for process in self.processes:
                if process.is_alive():
                    process.terminate()
            for process in self.processes:
                process.join(STOP_GRACE_S)
                if process.is_alive():
                    process.kill()
                    process.join()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for conn in self._conns:
            conn.close()
