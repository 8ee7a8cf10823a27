"""The server's database, for the admin commands run on the server host (``users``,
``runners``, ``gc``): the same LATBENCH_* settings as ``latbench serve``, migrated first."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@contextmanager
def server_session() -> Iterator[Session]:
    from service.db.engine import make_engine, make_sessionmaker, upgrade
    from service.settings import get_settings

    engine = make_engine(get_settings().db_url)
    try:
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()
