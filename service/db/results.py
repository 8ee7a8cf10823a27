"""Result rows: one per job (unique ``job_id``), written idempotently."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from exporters.errors import ConflictError
from service.db import owners
from service.db.engine import commit_new
from service.db.tables import (
    ArtifactRow,
    ComparisonRow,
    JobRow,
    PredictionRow,
    ResultRow,
    RunnerRow,
    SpecRow,
)
from service.jobs.transitions import Event, move

R = TypeVar("R", ResultRow, ComparisonRow, PredictionRow)  # a kind's result table: unique job_id
L = TypeVar("L", ResultRow, PredictionRow)  # a table of one spec's latency per job

# The tables of latencies by what they hold: one spec's latency on one class per row.
LATENCY_TABLES: dict[str, type[ResultRow | PredictionRow]] = {
    "measured": ResultRow,
    "predicted": PredictionRow,
}


def record_result(
    session: Session, *, job: JobRow, model: str, runner_id: str | None, measurement: dict[str, Any]
) -> tuple[ResultRow, bool]:
    """Store a profile job's measurement through ``finish_with``. Commits."""
    row = _latency_row(ResultRow, job, model, runner_id, measurement)
    row.p90_ms = measurement["latency_ms"].get("p90")
    return finish_with(session, job=job, runner_id=runner_id, row=row)


def record_prediction(
    session: Session, *, job: JobRow, model: str, runner_id: str | None, measurement: dict[str, Any]
) -> tuple[PredictionRow, bool]:
    """Store a predict job's ``PredictionRecord`` apart from measurements. Commits."""
    row = _latency_row(PredictionRow, job, model, None, measurement)
    return finish_with(session, job=job, runner_id=runner_id, row=row)


def _latency_row(
    table: type[L], job: JobRow, model: str, runner_id: str | None, measurement: dict[str, Any]
) -> L:
    return table(
        job_id=job.id,
        request_key=job.request_key,
        spec_hash=job.spec_hash,
        model=model,
        device_class=job.device_class,
        format=job.format,
        runner_id=runner_id,
        median_ms=float(measurement["latency_ms"]["median"]),
        measurement=measurement,
    )


def finish_with(session: Session, *, job: JobRow, runner_id: str | None, row: R) -> tuple[R, bool]:
    """Insert the job's result ``row`` (of any kind's table with a unique ``job_id``) and mark the
    job done, in one transaction, so no reader sees a result whose job still looks unfinished or
    the reverse; a repeat returns the stored one (``created`` False). With ``runner_id`` the job
    must be measuring under that runner at ``job.attempt``, else any active state does. The
    result is committed only if the job moved: ConflictError when it did not (it failed, was
    requeued or taken meanwhile) and holds no result. Commits."""
    table = type(row)
    attempt = job.attempt  # the conditional UPDATE refreshes the loaded row
    moved = move(
        session,
        Event.FINISH if runner_id else Event.FINISH_ON_SERVER,
        job_id=job.id,
        attempt=attempt,
        held_by=runner_id,
        commit=False,
    )
    if not moved:
        session.rollback()
        stored = session.scalars(select(table).where(table.job_id == job.id)).first()
        if stored is None:
            raise ConflictError(
                f"job {job.id!r} attempt {attempt} no longer accepts a result; not stored"
            )
        return stored, False
    session.add(row)  # after the UPDATE, whose autoflush would raise a duplicate too early
    if commit_new(session):
        return row, True
    return session.scalars(select(table).where(table.job_id == job.id)).one(), False


class Listed(NamedTuple):
    """A result as listed: with its spec, the artifact its job measured, and whether its runner
    has been revoked since (shown, never served as cached)."""

    result: ResultRow | PredictionRow
    spec: SpecRow
    artifact: ArtifactRow | None
    runner_revoked: bool


def list_results(
    session: Session,
    *,
    model: str | None = None,
    family: str | None = None,
    device_class: str | None = None,
    since: datetime | None = None,
    limit: int = 1000,
    kind: str = "measured",
    viewer: str | None = None,
) -> list[Listed]:
    """Newest first, from the table of ``kind`` (``LATENCY_TABLES``): measurements unless
    predictions are asked for by name; each with its spec, the artifact its job measured and its
    runner's revocation, in one query (a lookup per row, or a second query, costs a round trip
    each on the busiest listing). ``viewer``: only what they may see (``owners.visible``); None:
    all (an admin)."""
    filters = {
        "model": model,
        "family": family,
        "device_class": device_class,
        "since": since,
        "viewer": viewer,
    }
    given = {name: value for name, value in filters.items() if value}
    query = _listing(kind, frozenset(given))
    return [Listed(*row) for row in session.execute(query, {**given, "limit": limit})]


@lru_cache(maxsize=64)
def _listing(kind: str, filters: frozenset[str]) -> Select:
    """The listing's statement for one set of filters, built once with bound values: building
    an ORM statement costs about as much CPU as running it (as ``jobs._JOB_ROWS``)."""
    table = LATENCY_TABLES[kind]
    query = (
        select(table, SpecRow, ArtifactRow, RunnerRow.revoked_at.is_not(None))
        .join(SpecRow, SpecRow.hash == table.spec_hash)
        .outerjoin(JobRow, JobRow.id == table.job_id)
        .outerjoin(RunnerRow, RunnerRow.id == table.runner_id)
        .outerjoin(ArtifactRow, ArtifactRow.key == JobRow.artifact_key)
    )
    columns = {
        "model": table.model == bindparam("model"),
        "family": SpecRow.family == bindparam("family"),
        "device_class": table.device_class == bindparam("device_class"),
        "since": table.created_at >= bindparam("since"),
        "viewer": owners.visible(table.spec_hash, bindparam("viewer")),
    }
    for name in sorted(filters):
        query = query.where(columns[name])
    return query.order_by(table.created_at.desc()).limit(bindparam("limit"))


def prediction_for(session: Session, *, job_id: str) -> PredictionRow | None:
    return session.scalars(select(PredictionRow).where(PredictionRow.job_id == job_id)).first()
