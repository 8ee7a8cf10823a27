"""Secrets stay out of logs and process listings: a database error names no parameter of its
statement, and ``latbench runner`` takes its token from the environment or a file only."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from typer.testing import CliRunner

from service.cli import app
from service.db.engine import make_engine

SECRET = "s3cret-token-hash-0123456789"


def test_a_database_error_shows_no_parameter(db_url) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection, pytest.raises(SQLAlchemyError) as caught:
            connection.execute(text("INSERT INTO no_such_table (x) VALUES (:x)"), {"x": SECRET})
    finally:
        engine.dispose()
    assert SECRET not in str(caught.value)


def test_the_runner_token_is_refused_on_the_command_line() -> None:
    result = CliRunner().invoke(
        app, ["runner", "--server", "http://127.0.0.1:9", "--device-class", "cpu-x86_64",
              "--token", SECRET],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "No such option: --token" in result.output
