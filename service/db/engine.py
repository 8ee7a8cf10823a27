"""Engine and sessions built from a URL in a function (never at import), migrations on startup.

Two kinds of session share one engine: ``make_sessionmaker(engine)`` for work that writes, and
``make_sessionmaker(engine, read_only=True)`` for routes that only read. On SQLite (the embedded
default, WAL journal) a writing transaction takes the write lock up front (``BEGIN IMMEDIATE``)
and a reading one never does (a deferred ``BEGIN`` that only reads), so readers run beside the
one writer and never wait for it. Waits are bounded: a connection from the pool within
``pool_timeout_s``, the write lock within ``busy_timeout_s``; past either the request fails with
503 and ``Retry-After`` (``service.errors``) instead of piling up threads behind the lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")
READ_ONLY = "latbench_read_only"  # execution option of the engine behind read-only sessions

if TYPE_CHECKING:
    from service.settings import Settings


BACKGROUND_CONNECTIONS = 4  # beyond the request threads: reaper, dispatcher worker, heartbeat
SESSIONS_PER_REQUEST = 2  # at most: a read and a write session (``deps.Sessions``)


def engine_for(settings: Settings) -> Engine:
    """The engine of ``settings.db_url`` with the configured bounds on waiting: connections for
    each of the ``db_pool_size`` requests let in at once (``deps``) and for the background
    threads, so a request's thread never waits for a connection."""
    return make_engine(
        settings.db_url,
        pool_size=settings.db_pool_size * SESSIONS_PER_REQUEST + BACKGROUND_CONNECTIONS,
        pool_timeout_s=settings.db_pool_timeout_s,
        busy_timeout_s=settings.db_busy_timeout_s,
    )


def make_engine(
    url: str, *, pool_size: int = 16, pool_timeout_s: float = 5.0, busy_timeout_s: float = 5.0
) -> Engine:
    """``pool_size`` connections at most (no overflow: the bound is the bound). A statement's
    parameters never appear in its error (``hide_parameters``): they carry token hashes and
    users' text, and errors are logged."""
    pool = {
        "pool_size": pool_size,
        "max_overflow": 0,
        "pool_timeout": pool_timeout_s,
        "hide_parameters": True,
    }
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s}, **pool
        )
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_s))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, **pool)


def _sqlite_pragmas(busy_timeout_s: float):
    def on_connect(dbapi_connection, _record) -> None:
        """WAL journal (readers beside the writer); foreign keys (off by default in SQLite); the
        driver's own transaction handling off, so ``_sqlite_begin`` decides how each begins."""
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL stays safe
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.close()

    return on_connect


def _sqlite_begin(connection) -> None:
    """A writing transaction takes the write lock up front: a deferred one that reads then writes
    fails at once (SQLITE_BUSY_SNAPSHOT) when another writer got in between, instead of waiting
    its turn. A read-only one begins deferred and takes no lock at all in WAL mode."""
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions for writing work, or (``read_only``) for queries that never write: on SQLite a
    deferred transaction (``_sqlite_begin``), elsewhere autocommit (no BEGIN/ROLLBACK trips)."""
    if not read_only:
        return sessionmaker(engine, expire_on_commit=False)
    options: dict[str, object] = {READ_ONLY: True}
    if engine.dialect.name != "sqlite":
        options["isolation_level"] = "AUTOCOMMIT"
    return sessionmaker(engine.execution_options(**options), expire_on_commit=False)


def commit_new(session: Session) -> bool:
    """Commit pending inserts; False (rolled back) when a unique constraint says the row already
    exists. This is how concurrent writers of the same job, result or spec settle."""
    try:
        session.commit()
        return True
    except IntegrityError:
        session.rollback()
        return False


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (run by the server on startup)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
