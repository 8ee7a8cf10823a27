"""Engine and sessions built from a URL in a function (never at import), migrations on startup."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL journal; foreign keys are off by default in SQLite; the driver's own transaction
    handling is switched off so ``_begin_immediate`` decides. Since every transaction, reads
    included, begins IMMEDIATE, transactions run one at a time (others wait up to the busy
    timeout): WAL does not let a reading transaction run beside the writer here."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_immediate(connection) -> None:
    """Take the write lock up front: a deferred transaction that reads then writes fails at once
    (SQLITE_BUSY) when another writer got in between, instead of waiting its turn."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


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
