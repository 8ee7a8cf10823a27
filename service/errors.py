"""The error tree of ``exporters.errors`` mapped to HTTP once, through exception handlers.

Routes raise tree errors and never build HTTP errors themselves; every error body has the same
shape, ``{"error": <class>, "detail": <message>, "field": <dotted field or null>}``, with the
status of ``exporters.errors.HTTP_STATUS``; a client turns it back into the class it names with
``exporters.errors.error_from_response``.
(The CLI maps the same tree to exit codes in ``service.cli.fail``.)
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from exporters import errors as e

log = logging.getLogger(__name__)


def error_response(error: e.LatbenchError) -> JSONResponse:
    body = {
        "error": type(error).__name__,
        "detail": str(error),
        "field": getattr(error, "field", None),
    }
    headers = None
    if isinstance(error, e.AuthError):
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(error, e.BusyError):
        headers = {"Retry-After": str(error.retry_after_s)}
    return JSONResponse(body, status_code=e.http_status(error), headers=headers)


async def _latbench_handler(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, e.LatbenchError)
    return error_response(error)


async def _validation_handler(_request: Request, error: Exception) -> JSONResponse:
    """FastAPI's own validation errors become SpecErrors naming the first offending field."""
    assert isinstance(error, RequestValidationError)
    return error_response(e.spec_error_from(error.errors(), skip=("body",), default="body"))


async def _database_handler(_request: Request, error: Exception) -> JSONResponse:
    return database_response(error)


def database_response(error: Exception) -> JSONResponse:
    """No free connection in time, the SQLite write lock not granted in time, or the database
    unreachable: transient for the client, which retries, instead of a 500 or a hung request."""
    log.warning("database unavailable: %s", error)
    if isinstance(error, PoolTimeoutError):
        reason = "no database connection free in time"
    else:
        reason = "database busy or unreachable"
    return error_response(e.BusyError(f"the service is busy ({reason}); retry shortly"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.LatbenchError, _latbench_handler)
    app.add_exception_handler(OperationalError, _database_handler)
    app.add_exception_handler(PoolTimeoutError, _database_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
