"""Faults with real processes: `latbench serve` stopped (SIGTERM) or killed (SIGKILL) while an
export runs in its worker process, and the Redis broker restarted with a job in flight. After
each, nothing the server started is left running, the database holds no connection of it, and the
accepted job ends (long variants, `-m faults`: after a restart of the server).
(A runner killed mid-measurement: tests/e2e/test_distributed.py; an unfinished queue across a
crash: tests/e2e/test_embedded.py.)"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import psutil
import pytest
from sqlalchemy import create_engine, make_url, text

from tests.e2e.conftest import FAST, LATBENCH, Proc, Server, celery_server, free_port
from tests.e2e.test_distributed import profile, start_runner
from tests.service.backends import POSTGRES_URL, fresh_postgres

pytestmark = pytest.mark.slow

# Not in the artifact cache of a fresh data dir: its export takes tens of seconds here.
SLOW_EXPORT = {"model": "fastvit_t8", "formats": ["onnx"]}
TINY = {"model": "mobileone_s0", "input": {"height": 32, "width": 32}, "formats": ["onnx"]}


def submit_and_wait_for_export(server: Server, **body) -> str:
    """A job accepted and in its export, with the export worker process running; ``body``: more
    fields of the request."""
    body = {"model": SLOW_EXPORT, "settings": FAST, **body}
    response = server.http.post("/profile", json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["jobs"][0]["id"]
    server.wait_job(job_id, states=("exporting",), timeout=120)
    wait_for_export_process(server.popen.pid)
    return job_id


def wait_for_export_process(pid: int, timeout_s: float = 120) -> psutil.Process:
    """The export child, forked by the fork server once the job is marked exporting."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for process in descendants(pid):
            with contextlib.suppress(psutil.Error):
                parent = process.parent()
                if parent is not None and "forkserver" in " ".join(parent.cmdline()):
                    return process
        time.sleep(0.1)
    raise AssertionError(f"no export process under {pid} within {timeout_s:g} s")


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def running(process: psutil.Process) -> bool:
    """Alive and not a zombie (an exited orphan this container's init has not reaped yet holds
    no memory, no file and no connection)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_all_gone(processes: list[psutil.Process], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while any(map(running, processes)) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [p for p in processes if running(p)]
    described = [(p.pid, p.cmdline()) for p in alive]
    for process in alive:  # leave nothing behind for the next test
        process.kill()
    assert not described, f"still running {within_s:g} s later: {described}"


def connections_to(db_url: str) -> int:
    name = db_url.rsplit("/", 1)[1]
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.connect() as conn:
            query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name")
            return conn.execute(query, {"name": name}).scalar_one()
    finally:
        admin.dispose()


@pytest.mark.redis
@pytest.mark.postgres
def test_sigterm_to_a_celery_serve_ends_every_child_and_frees_the_database(base_env, tmp_path):
    """The issue's case: its export worker outlived `serve` holding a PostgreSQL connection.
    SIGTERM goes to the serve process only, as a plain `kill` sends it."""
    with celery_server(base_env, tmp_path / "server.log") as (server, db_url):
        job_id = submit_and_wait_for_export(server)
        children = descendants(server.popen.pid)
        assert len(children) >= 3, children  # export worker, fork server, export process
        started = time.monotonic()
        os.kill(server.popen.pid, signal.SIGTERM)
        server.popen.wait(timeout=60)
        assert_all_gone(children, within_s=max(1.0, 30 - (time.monotonic() - started)))
        assert connections_to(db_url) == 0
        engine = create_engine(db_url)
        with engine.connect() as conn:
            query = text("SELECT state FROM jobs WHERE id = :id")
            state = conn.execute(query, {"id": job_id}).scalar_one()
        engine.dispose()
        assert state == "exporting"  # the next start queues it again once its beat is silent


@pytest.mark.faults
def test_sigkilled_serve_takes_its_export_process_along_and_restart_finishes_the_job(
    base_env, tmp_path
):
    server = Server(base_env, tmp_path / "first.log")
    job_id = submit_and_wait_for_export(server)
    children = descendants(server.popen.pid)
    assert children, "no export process to watch"
    os.kill(server.popen.pid, signal.SIGKILL)  # the server only: a crash, not a group kill
    server.popen.wait(timeout=30)
    assert_all_gone(children, within_s=20)
    server.stop()
    again = Server(base_env, tmp_path / "second.log")
    try:
        job = again.wait_job(job_id, timeout=600)
    finally:
        again.stop()
    assert job["state"] == "done", job["error"]
    assert job["attempt"] == 2


@pytest.mark.faults
def test_a_job_that_kills_the_server_each_time_is_quarantined(base_env, tmp_path):
    """With two attempts allowed, the second crash during its export is the last: the next start
    fails the job with the reason instead of exporting it again."""
    base_env["LATBENCH_MAX_ATTEMPTS"] = "2"
    job_id = None
    for attempt in (1, 2):
        server = Server(base_env, tmp_path / f"run-{attempt}.log")
        if job_id is None:
            job_id = submit_and_wait_for_export(server)
        else:
            server.wait_job(job_id, states=("exporting",), timeout=120)
        os.kill(server.popen.pid, signal.SIGKILL)
        server.popen.wait(timeout=30)
        server.stop(signal.SIGKILL)
    last = Server(base_env, tmp_path / "last.log")
    try:
        job = last.wait_job(job_id, timeout=60)
    finally:
        last.stop()
    assert job["state"] == "failed" and job["attempt"] == 2
    assert "gave up after 2 attempt(s)" in job["error"] and "LATBENCH_MAX_ATTEMPTS" in job["error"]


class PrivateRedis:
    """A redis-server of this test's own (never the shared one), without persistence, so a
    restart loses every queued message as a crashed broker would."""

    def __init__(self, directory) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_redis_restarted_with_a_job_in_flight_loses_no_job(base_env, tmp_path):
    """The job's device message is lost with the broker's memory; the reaper sends the job
    again and a runner attached after the restart measures it."""
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        with fresh_postgres() as db_url:
            base_env.update(
                LATBENCH_DATABASE_URL=db_url,
                LATBENCH_BROKER_URL=redis.url,
                LATBENCH_REDISPATCH_S="5",
            )
            server = Server(base_env, tmp_path / "server.log", "--dispatcher", "celery")
            runner = None
            try:
                body = {"model": TINY, "settings": FAST}
                job_id = server.http.post("/profile", json=body).json()["jobs"][0]["id"]
                exported = text("SELECT artifact_key FROM jobs WHERE id = :id")
                engine = create_engine(db_url)
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    with engine.connect() as conn:
                        if conn.execute(exported, {"id": job_id}).scalar_one():
                            break
                    time.sleep(0.3)
                engine.dispose()
                redis.stop()  # the device task waits in Redis: lost with it
                redis.start()
                runner = Proc(
                    [LATBENCH, "runner", "--server", server.url, "--device-class", "cpu-x86_64",
                     "--cache", str(tmp_path / "cache"), "--lock", str(tmp_path / "lock")],
                    base_env,
                    tmp_path / "runner.log",
                )  # fmt: skip
                job = server.wait_job(job_id, timeout=180)
            finally:
                if runner:
                    runner.kill()
                server.stop()
    finally:
        redis.stop()
    assert job["state"] == "done", job["error"]
    assert job["attempt"] == 1  # sent again, not requeued: nothing was measured twice


class TcpProxy:
    """A loopback TCP forwarder to the shared PostgreSQL: ``down()`` drops every connection and
    refuses new ones (the server seen from latbench is gone), ``up()`` listens again. The shared
    server itself is never stopped."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._open = self._open, []
        for sock in [listener, *sockets]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # down()
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.mark.postgres
def test_postgresql_briefly_down_loses_no_job_and_the_service_recovers(base_env, tmp_path):
    """PostgreSQL unreachable for 30 s from the start of a job's export (through a TCP proxy
    this test stops and starts): the export ends while the database is away, the job still ends
    (done, or failed with the reason within the job timeout), and the worker takes the next."""
    url = make_url(POSTGRES_URL)
    proxy = TcpProxy(url.port or 5432)
    proxy.up()
    try:
        with fresh_postgres() as db_url:
            base_env["LATBENCH_DATABASE_URL"] = (
                make_url(db_url).set(port=proxy.port).render_as_string(hide_password=False)
            )
            base_env["LATBENCH_JOB_TIMEOUT_S"] = "90"
            server = Server(base_env, tmp_path / "server.log")
            try:
                body = {"model": TINY, "settings": {**FAST, "max_seconds": 3.0}}
                job_id = server.http.post("/profile", json=body).json()["jobs"][0]["id"]
                server.wait_job(job_id, states=("exporting",), timeout=120)
                proxy.down()
                time.sleep(30)
                proxy.up()
                job = server.wait_job(job_id, timeout=240)
                later = server.http.post("/profile", json={**body, "settings": {**FAST, "seed": 5}})
                assert later.status_code == 202, later.text
                after = server.wait_job(later.json()["jobs"][0]["id"], timeout=240)
            finally:
                server.stop()
    finally:
        proxy.down()
    assert job["state"] == "done" or (job["state"] == "failed" and job["error"]), job
    assert after["state"] == "done", after["error"]


@contextlib.contextmanager
def tiny_filesystem(path, size: str):
    """A tmpfs of ``size`` mounted at ``path`` (needs root and the mount capability)."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(reason=f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_artifact_disk_full_fails_the_job_with_the_reason_and_publishes_nothing(base_env, tmp_path):
    """The data dir on a 1 MiB tmpfs (the database beside it): the ONNX file does not fit."""
    with tiny_filesystem(tmp_path / "small", "1m") as small:
        base_env["LATBENCH_DATA_DIR"] = str(small)
        base_env["LATBENCH_DATABASE_URL"] = f"sqlite:///{tmp_path / 'latbench.db'}"
        server = Server(base_env, tmp_path / "server.log")
        try:
            body = {"model": TINY, "settings": FAST}
            job_id = server.http.post("/profile", json=body).json()["jobs"][0]["id"]
            job = server.wait_job(job_id, timeout=240)
            healthy = server.http.get("/healthz").status_code
        finally:
            server.stop()
        published = list((small / "artifacts").glob("*"))
        scratch = list((small / "tmp").glob("*"))
    assert job["state"] == "failed" and "No space left on device" in job["error"], job
    assert healthy == 200
    assert published == [] and scratch == []  # nothing half-written left or served


@pytest.mark.faults
@pytest.mark.redis
@pytest.mark.postgres
def test_a_silent_runner_loses_its_job_and_its_late_result_is_refused(base_env, tmp_path):
    """A runner stopped (SIGSTOP) holding a job: no heartbeat, so its job goes to another runner;
    resumed (SIGCONT), whatever it posts for the lost attempt is refused. The heir stands for
    another host, with a host lock of its own: the stopped runner may already hold this host's,
    and keeps it while stopped, as one measurement per host must (the heir then waited on it
    until the test gave up, once in CI)."""
    heir_env = {**base_env, "LATBENCH_HOST_LOCK": str(tmp_path / "heir-host.lock")}
    with celery_server(base_env, tmp_path / "server.log") as (server, _):
        silent, silent_id = start_runner(server, base_env, tmp_path / "silent.log")
        heir = None
        try:
            slow = profile(server, seed=3, max_seconds=6.0, target_rel_ci=0.0001, max_iters=100000)
            assert server.wait_job(slow, states=("measuring",))["runner_id"] == silent_id
            os.killpg(silent.popen.pid, signal.SIGSTOP)
            heir, heir_id = start_runner(server, heir_env, tmp_path / "heir.log")
            job = server.wait_job(slow)
            os.killpg(silent.popen.pid, signal.SIGCONT)
            deadline = time.monotonic() + 60
            refused = f"of job {slow} attempt 1 refused"
            while refused not in silent.log.read_text() and time.monotonic() < deadline:
                time.sleep(0.5)
            late = silent.log.read_text()
        finally:
            os.killpg(silent.popen.pid, signal.SIGCONT)
            silent.kill()
            if heir:
                heir.kill()
        results = server.http.get("/results").json()["data"]
    assert job["state"] == "done" and job["attempt"] >= 2, job["error"]  # a late heartbeat requeues
    assert job["result"]["runner_id"] == heir_id
    # Resumed before or after fetching the artifact, it may not: its fetch (404) and failure
    # report, or its result, are refused (409).
    assert refused in late
    assert [r["job_id"] for r in results] == [slow]


@pytest.mark.faults
@pytest.mark.redis
@pytest.mark.postgres
def test_a_killed_export_worker_loses_its_job_within_the_heartbeat_window(base_env, tmp_path):
    """The Celery export worker SIGKILLed mid-export (its fork server and export die with it):
    its job stops heart-beating and is requeued within LATBENCH_HEARTBEAT_TIMEOUT_S (3 s here),
    not left exporting until the job timeout (1800 s); the dispatcher starts another export
    worker, which exports the new attempt (seconds, many heartbeat timeouts: a live export is
    never taken for dead, or the job would end at attempt 3), and a runner measures it. Before,
    the job stayed `exporting` at attempt 1 and nothing took the export queue again. Killed as
    soon as its export child runs: a wait before the kill raced the export's end (a loaded host
    once finished it first, and nothing was left to lose)."""
    with celery_server(base_env, tmp_path / "server.log") as (server, _):
        job_id = submit_and_wait_for_export(server, predict=False)  # measured: no runner yet
        [worker] = [
            p for p in descendants(server.popen.pid)
            if "service.dispatch.export_worker" in " ".join(p.cmdline())
        ]  # fmt: skip
        doomed = [worker, *descendants(worker.pid)]
        worker.kill()
        killed = time.monotonic()
        assert_all_gone(doomed, within_s=30)
        requeued = server.http.get(f"/jobs/{job_id}").json()
        while requeued["attempt"] == 1 and time.monotonic() < killed + 60:
            time.sleep(0.3)
            requeued = server.http.get(f"/jobs/{job_id}").json()
        assert requeued["attempt"] == 2, f"{requeued}\n{server.tail()}"
        assert requeued["state"] in ("queued", "exporting"), requeued
        runner, _ = start_runner(server, base_env, tmp_path / "runner.log")
        try:
            job = server.wait_job(job_id, timeout=600)
        finally:
            runner.kill()
    assert (job["state"], job["attempt"]) == ("done", 2), job["error"]
