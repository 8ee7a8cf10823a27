"""``create_app(settings)``: the FastAPI application of an API process, its database and the
dispatcher it hands jobs to.

An API process takes no job work: the reaper, the recovery of unfinished jobs, the export workers
and the embedded runner are the worker process's (``service.workers``). Startup migrates the
schema (unless the process that started this one already did); nothing is created at import
time, so tests build as many apps as they like, each on its own database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import errors
from service.api import (
    accuracy,
    artifacts,
    calibration,
    caller,
    compare,
    devices,
    docs,
    gateruns,
    guard,
    health,
    jobs,
    limits,
    models,
    profile,
    results,
    runners,
)
from service.api.deps import checkers
from service.api.schemas import ERROR_RESPONSES
from service.auth import Directory
from service.dashboard import routes as dashboard
from service.db.engine import engine_for, make_sessionmaker, upgrade
from service.dispatch import Dispatcher, api_dispatcher
from service.dispatch.isolated import start_fork_server
from service.settings import Settings, get_settings
from service.warmup import settle_in_background


def create_app(
    settings: Settings | None = None,
    dispatcher: Dispatcher | None = None,
    *,
    long_running: bool = False,
    migrate: bool = True,
) -> FastAPI:
    """``dispatcher`` replaces the one the settings choose (tests pass a double from tests/);
    ``long_running`` (``latbench serve``) settles the process once started (``service.warmup``);
    ``migrate=False``: the schema is already current (``latbench serve`` migrates once, before
    it starts its processes)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_for(settings)
        if migrate:
            upgrade(engine)
        app.state.sessions = make_sessionmaker(engine)
        app.state.read_sessions = make_sessionmaker(engine, read_only=True)
        app.state.directory = Directory(app.state.read_sessions)
        app.state.db_slots = asyncio.Semaphore(settings.db_pool_size)
        app.state.dispatcher = dispatcher or api_dispatcher(settings)
        app.state.checkers = checkers(settings)
        start_fork_server()  # from this, the main thread: the server lives as long as it does
        app.state.dispatcher.start()
        if long_running:
            settle_in_background(settings, app.state.checkers)
        try:
            yield
        finally:
            app.state.checkers.stop()
            app.state.dispatcher.stop()
            engine.dispose()

    app = FastAPI(
        title="latbench",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # service.api.docs serves both behind the token
        openapi_url=None,
        description="On-device latency profiling for vision backbones. "
        "Weights are always random: latency does not depend on them.",
    )
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(guard.TextGuard)
    app.add_middleware(caller.CallerGate, settings=settings)
    app.add_middleware(  # outermost: bounds first
        limits.BodyLimit,
        limit=settings.max_body_bytes,
        paths={
            "/artifacts": settings.max_artifact_bytes,
            "/calibrations": settings.max_artifact_bytes,
        },
    )
    for module in (  # matched in this order, per request: the most requested first
        health,
        jobs,
        runners,
        results,
        devices,
        profile,
        compare,
        artifacts,
        calibration,
        models,
        docs,
        accuracy,
        gateruns,
    ):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    dashboard.mount(app)
    return app
