"""The embedded default (SQLite, WAL) under contention: a held write lock never stalls a read, a
writer that cannot get the lock or a connection in time gets a 503 with Retry-After instead of a
hung request, and the service answers normally once the lock is gone."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from service.app import create_app
from service.db import runners
from service.db.engine import make_engine, make_sessionmaker, upgrade
from service.db.tables import JobRow, RunnerRow
from service.dispatch.local import LocalDispatcher


@contextmanager
def write_lock(path: str) -> Iterator[None]:
    """Another process's writer in the middle of a transaction: it holds the write lock."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE jobs SET state = state")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@pytest.fixture
def sqlite_settings(settings, monkeypatch):
    settings.local_runner = True  # this CPU's jobs are accepted, but the worker never starts
    monkeypatch.setattr(LocalDispatcher, "start", lambda self: None)
    settings.db_busy_timeout_s = 0.3
    settings.db_pool_timeout_s = 0.3
    return settings


def db_path(settings) -> str:
    return str((settings.data_dir / "latbench.db").resolve())


def test_read_session_runs_beside_a_held_write_lock(tmp_path):
    path = str(tmp_path / "db.sqlite")
    engine = make_engine(f"sqlite:///{path}", busy_timeout_s=5)
    upgrade(engine)
    reads = make_sessionmaker(engine, read_only=True)
    with write_lock(path):
        start = time.monotonic()
        with reads() as session:
            assert session.scalars(select(JobRow)).all() == []
        waited = time.monotonic() - start
    engine.dispose()
    assert waited < 5, f"the read waited {waited:.1f} s for the writer's lock"


def test_reads_answer_and_writes_get_503_while_the_lock_is_held(sqlite_settings):
    with TestClient(create_app(sqlite_settings)) as client:
        with write_lock(db_path(sqlite_settings)):
            reads = [client.get(p) for p in ("/healthz", "/jobs", "/results", "/devices")]
            write = client.post("/profile", json={"model": "mobileone_s0", "formats": ["onnx"]})
        after = client.post("/profile", json={"model": "mobileone_s0", "formats": ["onnx"]})
    assert [r.status_code for r in reads] == [200, 200, 200, 200]
    assert write.status_code == 503, write.text
    assert write.headers["retry-after"] == "1"
    assert write.json()["error"] == "BusyError"
    assert after.status_code == 202, after.text


def test_an_exhausted_pool_is_a_503_not_a_wedge(sqlite_settings):
    sqlite_settings.db_pool_size = 1
    app = create_app(sqlite_settings)
    with TestClient(app) as client:
        pool = app.state.sessions.kw["bind"].pool
        held = [app.state.read_sessions() for _ in range(pool.size())]
        for session in held:
            session.execute(text("SELECT 1"))  # checks out every connection
        try:
            busy = client.get("/jobs")
        finally:
            for session in held:
                session.close()
        after = client.get("/jobs")
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert after.status_code == 200


def test_many_concurrent_reads_and_writes_all_answer(sqlite_settings):
    """32 threads mixing reads and cached-or-coalesced writes: every read a 200 (a writer never
    stalls a read), every write a 202 or a 503 with Retry-After, the writes that got in all name
    one coalesced job, none hangs past the client's patience, and the service is healthy after."""
    sqlite_settings.db_busy_timeout_s = 5
    sqlite_settings.db_pool_timeout_s = 60  # a 503 here is the write lock's, not the pool's
    reads: list[int] = []
    writes: list[tuple[int, str | None]] = []
    with TestClient(create_app(sqlite_settings)) as client:

        def hammer(i: int) -> None:
            for _ in range(10):
                if i % 4 == 0:
                    r = client.post("/profile", json={"model": "mobileone_s0", "formats": ["onnx"]})
                    job = r.json()["jobs"][0]["id"] if r.status_code == 202 else None
                    if r.status_code == 503 and r.headers.get("retry-after") != "1":
                        job = "no Retry-After"
                    writes.append((r.status_code, job))
                else:
                    reads.append(client.get("/jobs").status_code)

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a request hung"
        after = client.get("/healthz")
        listed = client.get("/jobs").json()
    assert reads == [200] * 240
    assert len(writes) == 80 and {code for code, _ in writes} <= {202, 503}, writes
    assert all(job is None for code, job in writes if code == 503), "a 503 without Retry-After: 1"
    accepted = {job for code, job in writes if code == 202}
    assert len(accepted) == 1, f"{len(accepted)} jobs from one request (want one, coalesced)"
    assert [j["id"] for j in listed["data"]] == list(accepted)
    assert after.status_code == 200


def test_more_concurrent_reads_than_connections_all_answer(sqlite_settings):
    """64 clients, 2 database sessions: requests wait their turn on the event loop, so none waits
    in a thread for a connection that only a request queued behind it would return."""
    sqlite_settings.db_pool_size = 2
    sqlite_settings.db_pool_timeout_s = 60
    statuses: list[int] = []
    with TestClient(create_app(sqlite_settings)) as client:

        def read() -> None:
            for _ in range(5):
                statuses.append(client.get("/jobs").status_code)

        threads = [threading.Thread(target=read) for _ in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a request hung"
    assert statuses == [200] * 320


def test_a_heartbeat_survives_a_locked_database(tmp_path):
    path = str(tmp_path / "db.sqlite")
    engine = make_engine(f"sqlite:///{path}", busy_timeout_s=0.2)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        runner, _ = runners.register_runner(session, device_class="cpu-x86_64", description={})
        first = runner.last_heartbeat
    with write_lock(path):
        refused = runners.beat(sessions, runner_id=runner.id)
    recorded = runners.beat(sessions, runner_id=runner.id)
    with sessions() as session:
        later = session.get(RunnerRow, runner.id).last_heartbeat
    engine.dispose()
    assert (refused, recorded) == (False, True)
    assert later > first


def test_a_request_answered_from_the_cache_takes_no_write_lock(sqlite_settings):
    """A repeated POST /profile whose result is stored only reads: it answers while another
    writer holds the lock (it was a 503 once the busy timeout passed, and under load the writes
    of cached requests queued behind each other)."""
    request = {"model": "mobileone_s0", "formats": ["onnx"]}
    with TestClient(create_app(sqlite_settings)) as client:
        job_id = client.post("/profile", json=request).json()["jobs"][0]["id"]
        with sqlite3.connect(db_path(sqlite_settings)) as conn:  # as if its result had come in
            conn.execute(
                "UPDATE jobs SET state = 'done', active_key = NULL, finished_at = created_at "
                "WHERE id = ?",
                (job_id,),
            )
        with write_lock(db_path(sqlite_settings)):
            cached = client.post("/profile", json=request)
        shown = client.get(f"/jobs/{job_id}").json()
    assert cached.status_code == 202, cached.text
    assert [(j["id"], j["cached"]) for j in cached.json()["jobs"]] == [(job_id, True)]
    # stored naive UTC, answered as RFC 3339 date-times with their offset
    assert shown["created_at"].endswith("Z") and shown["finished_at"].endswith("Z"), shown
