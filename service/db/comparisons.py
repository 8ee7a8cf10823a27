"""Comparison rows: a compare job's one result (unique ``job_id``), written idempotently."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.results import finish_with
from service.db.tables import ComparisonRow, JobRow


def record_comparison(
    session: Session, *, job: JobRow, model: str, runner_id: str | None, measurement: dict[str, Any]
) -> tuple[ComparisonRow, bool]:
    """Store a compare job's validated ``ComparisonRecord`` (``measurement``: the recorder
    signature every kind shares) and mark the job done. Commits."""
    row = ComparisonRow(
        job_id=job.id,
        request_key=job.request_key,
        baseline_spec_hash=job.specs["baseline"],
        candidate_spec_hash=job.specs["candidate"],
        device_class=job.device_class,
        format=job.format,
        runner_id=runner_id,
        ratio=float(measurement["ratio"]),
        comparison=measurement,
    )
    return finish_with(session, job=job, runner_id=runner_id, row=row)


def comparison_for(session: Session, *, job_id: str) -> ComparisonRow | None:
    return session.scalars(select(ComparisonRow).where(ComparisonRow.job_id == job_id)).first()
