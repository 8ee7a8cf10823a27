"""This installation's database, for the commands that read or write it on this host (``users``,
``runners``, ``gc`` on the server host; ``profile`` and ``compare`` keeping their results;
``models``, ``report`` and ``predictor fit`` reading them): the same LATBENCH_* settings as
``latbench serve``, read afresh, and the schema migrated first."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from service.settings import Settings


@contextmanager
def local_database() -> Iterator[tuple[Session, Settings]]:
    """A session on the database of ``LATBENCH_DATABASE_URL`` / the data dir, and the settings."""
    from service.db.engine import make_engine, make_sessionmaker, upgrade
    from service.settings import Settings

    settings = Settings()
    engine = make_engine(settings.db_url)
    try:
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            yield session, settings
    finally:
        engine.dispose()


@contextmanager
def server_session() -> Iterator[Session]:
    with local_database() as (session, _):
        yield session
