"""Faults with real processes: `latbench serve` stopped (SIGTERM) or killed (SIGKILL) while an
export runs in its worker process. After each, nothing it started is left running, the database
holds no connection of it, and (long variant, `-m faults`) the accepted job ends on restart.
(A runner killed mid-measurement: tests/e2e/test_distributed.py; an unfinished queue across a
crash: tests/e2e/test_embedded.py.)"""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from sqlalchemy import create_engine, text

from tests.e2e.conftest import FAST, Server
from tests.service.backends import POSTGRES_URL, fresh_postgres, redis_namespace

pytestmark = pytest.mark.slow

# Not in the artifact cache of a fresh data dir: its export takes tens of seconds here.
SLOW_EXPORT = {"model": "fastvit_t8", "formats": ["onnx"]}


def submit_and_wait_for_export(server: Server) -> str:
    """A job accepted and in its export, with the export worker process running."""
    response = server.http.post("/profile", json={"model": SLOW_EXPORT, "settings": FAST})
    assert response.status_code == 202, response.text
    job_id = response.json()["jobs"][0]["id"]
    server.wait_job(job_id, states=("exporting",), timeout=120)
    time.sleep(3)  # the worker process is forked once the job is marked exporting
    return job_id


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
    with fresh_postgres() as db_url, redis_namespace() as (redis_url, namespace):
        base_env.update(
            LATBENCH_DATABASE_URL=db_url,
            LATBENCH_BROKER_URL=redis_url,
            LATBENCH_QUEUE_NAMESPACE=namespace,
        )
        server = Server(base_env, tmp_path / "server.log", "--dispatcher", "celery")
        try:
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
            assert state == "exporting"  # left for the next start to queue again
        finally:
            server.stop()


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
