"""``create_app(settings)``: the FastAPI application, its database and its dispatcher.

Startup migrates the schema, starts the dispatcher and the reaper, and queues again every job a
previous process left unfinished; shutdown stops them. Nothing is created at import time, so tests
build as many apps as they like, each on its own database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import errors, retention
from service.api import (
    accuracy,
    artifacts,
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
from service.api.schemas import ERROR_RESPONSES
from service.auth import Directory
from service.dashboard import routes as dashboard
from service.db.engine import engine_for, make_sessionmaker, upgrade
from service.dispatch import Dispatcher, make_dispatcher
from service.dispatch.reaper import Reaper, recover
from service.settings import Settings, get_settings
from service.warmup import settle_in_background
from service.workers import Replicas


def create_app(
    settings: Settings | None = None,
    dispatcher: Dispatcher | None = None,
    *,
    long_running: bool = False,
    replicas: Replicas | None = None,
    replica: bool = False,
) -> FastAPI:
    """``dispatcher`` replaces the one the settings choose (tests pass a double from tests/);
    ``long_running`` (``latbench serve``) settles the process once started (``service.warmup``).
    The first process of ``latbench serve`` starts and stops its ``replicas``; a ``replica``
    only answers requests: the migrations, recovery, reaper and dispatcher work are the first
    process's (``service.workers``)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_for(settings)
        if not replica:
            upgrade(engine)
        app.state.sessions = make_sessionmaker(engine)
        app.state.read_sessions = make_sessionmaker(engine, read_only=True)
        app.state.directory = Directory(app.state.read_sessions)
        app.state.db_slots = asyncio.Semaphore(settings.db_pool_size)
        app.state.dispatcher = dispatcher or make_dispatcher(settings, app.state.sessions)
        reaper = None if replica else Reaper(app.state.sessions, settings, app.state.dispatcher)
        if reaper is not None:  # before any worker of this start writes scratch
            with app.state.sessions() as session:
                retention.at_start(session, settings)
        app.state.dispatcher.start()
        if reaper is not None:
            recover(app.state.sessions, settings, app.state.dispatcher)
            reaper.start()
        if replicas is not None:
            replicas.start(app.state.dispatcher)
        if long_running:
            settle_in_background(settings, measures_here=not replica)
        try:
            yield
        finally:
            if replicas is not None:
                replicas.stop()
            if reaper is not None:
                reaper.stop()
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
        paths={"/artifacts": settings.max_artifact_bytes},
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
        models,
        docs,
        accuracy,
        gateruns,
    ):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    dashboard.mount(app)
    return app
