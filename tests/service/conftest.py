from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import make_engine, make_sessionmaker, upgrade
from service.settings import Settings
from tests.service.backends import fresh_postgres


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings isolated from the environment's .env and from other tests."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        local_runner=False,
        reference_csv=tmp_path / "absent.csv",
        host_lock=tmp_path / "host.lock",
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    with fresh_postgres() as url:
        yield url


@pytest.fixture
def sessions(db_url) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()
