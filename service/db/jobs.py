"""Job rows: creating (or coalescing) a job and the queries over jobs. A job's state changes
only through ``service.jobs.transitions``, the one table of its moves."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, func, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from exporters.errors import NotFoundError
from exporters.spec import parse_spec
from service.db import owners, runners
from service.db.engine import commit_new
from service.db.tables import ArtifactRow, JobRow, ResultRow, RunnerRow, SpecRow


class JobState(str, Enum):
    QUEUED = "queued"
    EXPORTING = "exporting"
    MEASURING = "measuring"
    DONE = "done"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        return self not in (JobState.DONE, JobState.FAILED)


ACTIVE = tuple(s.value for s in JobState if s.active)


def upsert_spec(
    session: Session, *, spec_hash: str, model: str, family: str | None, body: dict[str, Any]
) -> None:
    """Store the spec once; a concurrent request storing the same one is no error. Commits.

    The row keeps only the fields its hash covers (``ModelSpec.identity()``): whatever else the
    request carried (its ``formats``) belongs to that request, and a later one with the same hash
    must not inherit it. A body whose hash is not ``spec_hash`` is refused."""
    spec = parse_spec(body)
    if spec.content_hash() != spec_hash:
        raise ValueError(f"spec body does not hash to {spec_hash!r}")
    if session.get(SpecRow, spec_hash) is not None:
        return
    session.add(SpecRow(hash=spec_hash, model=model, family=family, body=spec.identity()))
    commit_new(session)


def create_or_coalesce(
    session: Session,
    *,
    spec_hash: str,
    device_class: str,
    fmt: str,
    settings: dict[str, Any],
    request_key: str,
    user: str,
    reuse_result: bool = True,
    kind: str = "profile",
    specs: dict[str, str] | None = None,
    artifact_keys: dict[str, str] | None = None,
) -> tuple[JobRow, bool]:
    """A new queued job (``created`` True), else the unfinished job with the same request key,
    else (``reuse_result``) the done job that measured it. Commits.

    The unique ``active_key`` decides races between identical requests; the result check runs
    after our insert, in its transaction, so a job completing meanwhile is seen, not duplicated
    (a result and its job's completion commit together). ``specs``: role -> spec hash for kinds
    taking several models (``spec_hash`` is then the first role's). ``artifact_keys``: role ->
    artifact key when every artifact is in the store already: the job is created exported."""
    job = JobRow(
        id=uuid.uuid4().hex,
        kind=kind,
        spec_hash=spec_hash,
        specs=specs,
        device_class=device_class,
        format=fmt,
        settings=settings,
        request_key=request_key,
        active_key=request_key,
        user=user,
        state=JobState.QUEUED.value,
        attempt=1,
        artifact_key=next(iter(artifact_keys.values())) if artifact_keys else None,
        artifact_keys=artifact_keys if artifact_keys and len(artifact_keys) > 1 else None,
    )
    session.add(job)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        existing = session.scalars(select(JobRow).where(JobRow.active_key == request_key)).first()
        if existing is not None:
            return existing, False
        done = measured_job(session, request_key=request_key)  # it finished meanwhile
        if done is not None:
            return done, False
        return create_or_coalesce(  # it failed meanwhile: this request starts a new one
            session,
            spec_hash=spec_hash,
            device_class=device_class,
            fmt=fmt,
            settings=settings,
            request_key=request_key,
            user=user,
            reuse_result=reuse_result,
            kind=kind,
            specs=specs,
            artifact_keys=artifact_keys,
        )
    done = measured_job(session, request_key=request_key) if reuse_result else None
    if done is not None:
        session.rollback()
        return done, False
    session.commit()
    return job, True


def measured_job(session: Session, *, request_key: str) -> JobRow | None:
    """The newest job whose result answers this request key: a done job, whatever its kind (a
    job becomes done in the transaction that stores its result), measured by no runner an admin
    has since revoked (such a request is measured again)."""
    query = (
        select(JobRow)
        .where(JobRow.request_key == request_key, JobRow.state == JobState.DONE.value)
        .where(or_(JobRow.runner_id.is_(None), JobRow.runner_id.not_in(runners.revoked_runners())))
        .order_by(JobRow.finished_at.desc())
    )
    return session.scalars(query).first()


def active_job(session: Session, *, request_key: str) -> JobRow | None:
    """The unfinished job a request with this key would join."""
    return session.scalars(select(JobRow).where(JobRow.active_key == request_key)).first()


def get_job(session: Session, *, job_id: str) -> JobRow:
    job = session.get(JobRow, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id!r}")
    return job


def spec_hashes(job: JobRow) -> set[str]:
    """Every spec the job measures (a compare job's both sides)."""
    return {job.spec_hash, *(job.specs or {}).values()}


@dataclass(frozen=True)
class JobRows:
    """A job with the rows GET /jobs/{id} shows: its spec, its result and artifact if any, and
    whether the runner that holds or measured it has been revoked since."""

    job: JobRow
    spec: SpecRow
    result: ResultRow | None
    artifact: ArtifactRow | None
    runner_revoked: bool


def _job_rows(viewer: bool) -> Select:
    """The statement of ``get_job_rows``; ``viewer``: with the caller's visibility of the job
    as its last column (``owners.visible_job``). Built once each: constructing an ORM statement
    costs about as much CPU as running it."""
    query = (
        select(JobRow, SpecRow, ResultRow, ArtifactRow, RunnerRow.revoked_at.is_not(None))
        .join(SpecRow, SpecRow.hash == JobRow.spec_hash)
        .outerjoin(ResultRow, ResultRow.job_id == JobRow.id)
        .outerjoin(ArtifactRow, ArtifactRow.key == JobRow.artifact_key)
        .outerjoin(RunnerRow, RunnerRow.id == JobRow.runner_id)
        .where(JobRow.id == bindparam("job_id"))
    )
    return query.add_columns(owners.visible_job(bindparam("viewer"))) if viewer else query


_JOB_ROWS = {viewer: _job_rows(viewer) for viewer in (False, True)}


def get_job_rows(session: Session, *, job_id: str, viewer: str | None = None) -> JobRows:
    """The job, its spec, result and artifact, its runner's revocation and (``viewer``: a
    non-admin's name) whether they may see it, in one statement: a query through the ORM costs
    more CPU than the rest of a small request, and this route is polled. A job the viewer may
    not see is the NotFoundError of one that does not exist."""
    params = {"job_id": job_id} if viewer is None else {"job_id": job_id, "viewer": viewer}
    row = session.execute(_JOB_ROWS[viewer is not None], params).first()
    if row is None or (viewer is not None and not row[-1]):
        raise NotFoundError(f"no job {job_id!r}")
    return JobRows(*row[:5])


def list_jobs(
    session: Session,
    *,
    state: str | None = None,
    device_class: str | None = None,
    model: str | None = None,
    limit: int = 100,
    offset: int = 0,
    viewer: str | None = None,
) -> tuple[list[JobRow], int]:
    """Newest first, and how many match; ``viewer``: only jobs every spec of which is no upload
    or one ``viewer`` uploaded (``owners.visible_job``; None: all, for an admin), filtered in
    the statement itself so the count is the number of jobs its pages hold."""
    query = select(JobRow)
    if viewer is not None:
        query = query.where(owners.visible_job(literal(viewer)))
    if state:
        query = query.where(JobRow.state == state)
    if device_class:
        query = query.where(JobRow.device_class == device_class)
    if model:
        query = query.join(SpecRow).where(SpecRow.model == model)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(JobRow.created_at.desc()).limit(limit).offset(offset))
    return list(rows), count


def count_active(session: Session, *, user: str) -> int:
    query = select(func.count()).where(JobRow.user == user, JobRow.state.in_(ACTIVE))
    return session.scalar(query) or 0


def active_jobs(session: Session) -> list[JobRow]:
    return list(
        session.scalars(select(JobRow).where(JobRow.state.in_(ACTIVE)).order_by(JobRow.created_at))
    )


def overdue_jobs(session: Session, *, started_before: datetime) -> list[JobRow]:
    """Jobs running since before ``started_before``: an export from its start, a measurement
    from its claim (time spent queued in between does not count)."""
    query = select(JobRow).where(
        or_(
            and_(JobRow.state == JobState.EXPORTING.value, JobRow.started_at < started_before),
            and_(
                JobRow.state == JobState.MEASURING.value,
                JobRow.measure_started_at < started_before,
            ),
        )
    )
    return list(session.scalars(query))


def silent_exports(session: Session, *, beat_before: datetime) -> list[JobRow]:
    """Jobs exporting whose export step last beat before ``beat_before``: its worker is gone."""
    query = select(JobRow).where(
        JobRow.state == JobState.EXPORTING.value, JobRow.beat_at < beat_before
    )
    return list(session.scalars(query))


def stale_queued_jobs(session: Session, *, submitted_before: datetime) -> list[JobRow]:
    """Jobs still waiting in the queue that were submitted before ``submitted_before``."""
    query = select(JobRow).where(
        JobRow.state == JobState.QUEUED.value, JobRow.created_at < submitted_before
    )
    return list(session.scalars(query))


def counts_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(JobRow.state, func.count()).group_by(JobRow.state))
    return {state: count for state, count in rows}


def queue_depth(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(JobRow.device_class, func.count())
        .where(JobRow.state == JobState.QUEUED.value)
        .group_by(JobRow.device_class)
    )
    return {device: count for device, count in rows}


@dataclass(frozen=True)
class DurationHistogram:
    """Cumulative counts of done jobs whose submission-to-result time is within each bound."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    total_s: float
    count: int


def _seconds(session: Session, start: Any, end: Any) -> Any:
    """``end - start`` in seconds as a SQL expression (SQLite has no interval type)."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return func.extract("epoch", end - start)


def done_durations(session: Session, *, bounds: tuple[float, ...]) -> DurationHistogram:
    """Seconds from submission to result of done jobs, bucketed by the database in one
    aggregate query (for /metrics): no finished job is loaded."""
    seconds = _seconds(session, JobRow.created_at, JobRow.finished_at)
    within = [func.coalesce(func.sum(case((seconds <= b, 1), else_=0)), 0) for b in bounds]
    query = select(*within, func.coalesce(func.sum(seconds), 0.0), func.count()).where(
        JobRow.state == JobState.DONE.value, JobRow.finished_at.is_not(None)
    )
    *cumulative, total, count = session.execute(query).one()
    return DurationHistogram(bounds, tuple(int(c) for c in cumulative), float(total), int(count))


def result_for(session: Session, *, job_id: str) -> ResultRow | None:
    return session.scalars(select(ResultRow).where(ResultRow.job_id == job_id)).first()
