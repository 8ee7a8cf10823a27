"""Real PostgreSQL and Redis for tests: a throw-away database or Redis DB each, skipped with the
reason when the server is not reachable — or failed, under LATBENCH_REQUIRE_SERVICES=1 (set by
.ci/run, which starts both servers), so CI never passes by skipping the distributed path."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_URL = os.environ.get(
    "LATBENCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("LATBENCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unavailable(reason: str) -> None:
    if os.environ.get("LATBENCH_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (LATBENCH_REQUIRE_SERVICES=1)")
    pytest.skip(reason=reason)


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """URL of a new, empty database on the server of LATBENCH_TEST_POSTGRES_URL; dropped after."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"latbench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        unavailable(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc.orig}")
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def redis_namespace() -> Iterator[tuple[str, str]]:
    """LATBENCH_TEST_REDIS_URL and a queue namespace of this test's own, so concurrent test runs
    sharing the server never take each other's tasks; its queues are deleted after."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        unavailable(f"Redis at {REDIS_URL} is not reachable: {exc}")
    namespace = f"test-{uuid.uuid4().hex[:12]}."
    try:
        yield REDIS_URL, namespace
    finally:
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)
        client.close()
