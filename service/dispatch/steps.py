"""The job steps every dispatcher runs, as functions over the database: export, claim, complete,
fail. Each moves the job with a conditional transition keyed by its attempt number, so a step run
twice (a re-delivered message) changes nothing the second time; ``complete`` also requires the
posting runner to hold the job at that attempt, so a runner that was given up on cannot finish
it. ``fail`` checks only the attempt: its callers (the server, the runner route) are trusted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from exporters.errors import ConflictError, LatbenchError
from exporters.formats import ExportFormat
from exporters.spec import parse_spec
from service import pipeline
from service.db import artifacts, jobs, runners
from service.db.jobs import JobState
from service.db.results import record_result
from service.db.tables import ResultRow, SpecRow, utcnow
from service.dispatch.task import MeasureTask

Sessions = Callable[[], Session]


def export_step(
    sessions: Sessions, *, job_id: str, attempt: int, store_root: Path, lock_path: Path
) -> MeasureTask | None:
    """Export the job's artifact; the task for its runner, or None when the job failed or was not
    this attempt's to export."""
    with sessions() as session:
        if not jobs.transition(
            session,
            job_id=job_id,
            attempt=attempt,
            from_states=[JobState.QUEUED],
            to=JobState.EXPORTING,
            started_at=utcnow(),
        ):
            return None
        job = jobs.get_job(session, job_id=job_id)
        spec = parse_spec(session.get(SpecRow, job.spec_hash).body)
    try:
        report = pipeline.export(
            spec, ExportFormat(job.format), store_root=store_root, lock_path=lock_path
        )
    except LatbenchError as exc:
        fail(sessions, job_id=job_id, attempt=attempt, error=str(exc))
        return None
    item = next(a for a in report["artifacts"] if a["format"] == job.format)
    with sessions() as session:
        artifacts.record_export(session, spec_hash=job.spec_hash, report=report)
        if not item.get("ok"):
            fail(
                sessions, job_id=job_id, attempt=attempt, error=item.get("error") or "export failed"
            )
            return None
        key = item["key"]
        if not jobs.transition(
            session,
            job_id=job_id,
            attempt=attempt,
            from_states=[JobState.EXPORTING],
            to=JobState.QUEUED,
            artifact_key=key,
        ):
            return None
    return MeasureTask(
        job_id=job_id,
        attempt=attempt,
        device_class=job.device_class,
        format=job.format,
        artifact_key=key,
        settings=job.settings,
    )


def claim(session: Session, *, job_id: str, attempt: int, runner_id: str) -> None:
    """A runner takes the job for measurement; ConflictError when it is no longer this attempt's."""
    if not jobs.transition(
        session,
        job_id=job_id,
        attempt=attempt,
        from_states=[JobState.QUEUED],
        to=JobState.MEASURING,
        runner_id=runner_id,
        measure_started_at=utcnow(),
    ):
        raise ConflictError(f"job {job_id!r} attempt {attempt} is not waiting for a runner")
    runners.set_current_job(session, runner_id=runner_id, job_id=job_id)


def complete(
    session: Session, *, job_id: str, attempt: int, runner_id: str, measurement: dict[str, Any]
) -> ResultRow:
    """Store the job's one result (a repeat by its runner returns the stored one) and mark the job
    done; ConflictError unless ``runner_id`` holds the job at ``attempt``."""
    job = jobs.get_job(session, job_id=job_id)
    if job.attempt != attempt or job.runner_id != runner_id:
        holder = f"runner {job.runner_id!r}" if job.runner_id else "no runner"
        raise ConflictError(
            f"runner {runner_id!r} does not hold job {job_id!r} at attempt {attempt} "
            f"(it is {job.state} at attempt {job.attempt}, held by {holder}); result refused"
        )
    if job.state == JobState.FAILED.value:
        raise ConflictError(f"job {job_id!r} has failed: {job.error}")
    model = session.get(SpecRow, job.spec_hash).model
    result, _ = record_result(
        session, job=job, model=model, runner_id=runner_id, measurement=measurement
    )
    runners.set_current_job(session, runner_id=runner_id, job_id=None)
    return result


def fail(sessions: Sessions, **kwargs: Any) -> bool:
    """``fail_in`` in a session of its own (workers; the API passes its request's session)."""
    with sessions() as session:
        return fail_in(session, **kwargs)


def fail_in(
    session: Session,
    *,
    job_id: str,
    attempt: int,
    error: str,
    runner_id: str | None = None,
    held_by: str | None = None,
) -> bool:
    """Fail the job at ``attempt`` (only while ``held_by`` holds it, where given: a remote
    runner reports failures of its own jobs only); True if it moved."""
    moved = jobs.transition(
        session,
        job_id=job_id,
        attempt=attempt,
        from_states=[s for s in JobState if s.active],
        to=JobState.FAILED,
        error=error[:4000],
        held_by=held_by,
    )
    if runner_id:
        runners.set_current_job(session, runner_id=runner_id, job_id=None)
    return moved
