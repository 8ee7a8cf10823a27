"""Request dependencies as ``Annotated`` aliases, so routes declare what they need in one word.

The ones that do no I/O are ``async def``: FastAPI runs a sync dependency in its thread pool, and a
request should not queue for a thread just to read its settings. A session is opened lazily (its
connection is taken at the first query, in the route's thread) and closed on the event loop as the
route returns, so freeing it needs no thread; how many requests hold one at once is bounded on the
event loop too (``_slot``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from exporters.errors import AuthError, BusyError, SpecError
from service.auth import Caller, Directory
from service.db import runners
from service.db.tables import RunnerRow
from service.dispatch.isolated import WorkerError, WorkerProcesses
from service.jobs.ports import Dispatcher
from service.settings import Settings

T = TypeVar("T")
CHECK_TIMEOUT_S = 120.0  # an upload's validation, a spec's work estimate: seconds, not minutes


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


@asynccontextmanager
async def _slot(request: Request) -> AsyncIterator[None]:
    """One of ``db_pool_size`` places for a request holding a session, waited for on the event
    loop, never in a thread: FastAPI runs a sync route, and then its response validation, on
    its thread pool, so requests waiting in threads for a connection could take every thread
    while those holding the connections wait for one to finish (the wedge of issue 11)."""
    settings: Settings = request.app.state.settings
    slots: asyncio.Semaphore = request.app.state.db_slots
    try:
        if slots.locked():  # wait_for costs a task: only when there is something to wait for
            await asyncio.wait_for(slots.acquire(), settings.db_pool_timeout_s)
        else:
            await slots.acquire()
    except TimeoutError:
        raise BusyError(
            "the service is busy (all database sessions in use); retry shortly"
        ) from None
    try:
        yield
    finally:
        slots.release()


@asynccontextmanager
async def write_session(request: Request) -> AsyncIterator[Session]:
    """A write session under a slot, for a route that must not hold one for all its work (an
    upload streams and validates its file first)."""
    async with _slot(request):
        with request.app.state.sessions() as session:
            yield session


async def _session(request: Request) -> AsyncIterator[Session]:
    async with write_session(request) as session:
        yield session


async def _read_session(request: Request) -> AsyncIterator[Session]:
    async with _slot(request):
        with request.app.state.read_sessions() as session:
            yield session


@dataclass(frozen=True)
class Sessions:
    """A read-only session and a write session for one request, under one slot: what a request
    only looks up it looks up in ``read``, and ``write`` (lazy, like every session) takes the
    write lock only if the request writes (a POST answered from the cache does not)."""

    read: Session
    write: Session


async def _sessions(request: Request) -> AsyncIterator[Sessions]:
    async with _slot(request):
        with request.app.state.read_sessions() as read, request.app.state.sessions() as write:
            yield Sessions(read, write)


async def _dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher


def checkers(settings: Settings) -> WorkerProcesses:
    """The bounded children an API process runs untrusted checks in (an upload's validation, a
    spec's work estimate): LATBENCH_EXPORT_MEMORY_MB each, CHECK_TIMEOUT_S at most."""
    return WorkerProcesses(
        memory_mb=settings.export_memory_mb,
        timeout_s=min(settings.job_timeout_s, CHECK_TIMEOUT_S),
        tries=1,
    )


async def _checkers(request: Request) -> WorkerProcesses:
    return request.app.state.checkers


def run_check(workers: WorkerProcesses, fn: Callable[..., T], *args: Any, field: str) -> T:
    """``fn(*args)`` in one of ``workers``: a check that ran past its time or died on what the
    user sent is a 422 naming ``field``, not a server error."""
    try:
        return workers.run(fn, *args)
    except WorkerError as exc:
        raise SpecError(f"{exc}", field=field) from None


async def _within_budget(request: Request, settings: SettingsDep) -> None:
    """A request naming a ``model`` spec: its work estimated against the budget in a bounded
    child, before the request takes a database slot (422 naming the budget it exceeds); the
    estimate is kept, so the route's own check is a cache hit. Declare it before the session."""
    try:
        body = await request.json()
    except ValueError:  # not JSON: the body's own validation answers
        return
    model = body.get("model") if isinstance(body, dict) else None
    if isinstance(model, str | dict):
        await run_in_threadpool(_estimate, model, request.app.state.checkers)


_ESTIMATING: dict[str, threading.Lock] = {}  # spec hash -> held while its estimate runs
_ESTIMATING_LOCK = threading.Lock()


def _estimate(model: str | dict, workers: WorkerProcesses) -> None:
    """One child per spec however many requests ask for it at once (the others wait for it);
    a spec that does not parse is left to the route, whose validation names the field."""
    from exporters.budget import cached, estimate_spec, remember
    from exporters.spec import parse_spec
    from exporters.zoo.registry import resolve

    try:
        spec = parse_spec(model)
    except SpecError:
        return
    resolve(spec)  # what can be refused without building (an unknown model) is refused here
    key = spec.content_hash()
    if cached(key) is not None:
        return
    with _ESTIMATING_LOCK:
        running = _ESTIMATING.setdefault(key, threading.Lock())
    try:
        with running:
            if cached(key) is None:
                remember(key, run_check(workers, estimate_spec, spec, field="model"))
    finally:
        with _ESTIMATING_LOCK:
            _ESTIMATING.pop(key, None)


SettingsDep = Annotated[Settings, Depends(_settings)]
# scope="function": the session closes as the route returns, never held while a response is sent
SessionDep = Annotated[Session, Depends(_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(_read_session, scope="function")]
SessionsDep = Annotated[Sessions, Depends(_sessions, scope="function")]
DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher)]
CheckersDep = Annotated[WorkerProcesses, Depends(_checkers)]
WithinBudgetDep = Annotated[None, Depends(_within_budget)]


def bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


CALLER = "latbench.caller"  # scope key: the Caller the CallerGate identified before the body


async def identify_request(request: Request) -> Caller:
    """Who sent ``request`` (``service.auth.Directory``): on the event loop when that needs no
    database (the API token; a laptop), else looked up in a thread under a session slot."""
    settings: Settings = request.app.state.settings
    directory: Directory = request.app.state.directory
    token = bearer(request)
    if directory.answers_now(settings, token):
        return directory.identify(settings, token)
    async with _slot(request):
        return await run_in_threadpool(directory.identify, settings, token)


async def _caller(request: Request) -> Caller:
    """The caller the CallerGate identified before any dependency ran (``service.api.caller``),
    or its refusal raised now, where the route needs a caller."""
    found = request.scope[CALLER]
    if isinstance(found, AuthError):
        raise found
    return found


CallerDep = Annotated[Caller, Depends(_caller)]


async def _user(caller: CallerDep) -> str:
    """The caller's name: what jobs, uploads, accuracy figures and gate runs record as owner,
    and what the per-user quotas count by."""
    return caller.name


UserDep = Annotated[str, Depends(_user)]


def _runner(runner_id: str, request: Request, session: SessionDep) -> RunnerRow:
    return runners.authenticate(session, runner_id=runner_id, token=bearer(request))


RunnerDep = Annotated[RunnerRow, Depends(_runner)]
