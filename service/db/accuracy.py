"""User-attached top-1 rows: set (replacing the previous one) and read, keyword-only."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from exporters.errors import NotFoundError
from service.db.tables import AccuracyRow, SpecRow, utcnow


def set_accuracy(
    session: Session,
    *,
    subject: str,
    top1: float,
    dataset: str,
    resolution: int | None,
    source: str,
    note: str | None,
    user: str,
) -> AccuracyRow:
    """Attach top-1 to a stored spec; NotFoundError when nothing with that hash was stored (the
    accuracy belongs to what was measured, so it must exist first). Commits."""
    if session.get(SpecRow, subject) is None:
        raise NotFoundError(
            f"no stored spec with hash {subject!r}: profile it first (POST /profile)"
        )
    row = session.get(AccuracyRow, subject) or AccuracyRow(subject=subject)
    row.top1, row.dataset, row.resolution = top1, dataset, resolution
    row.source, row.note, row.user, row.created_at = source, note, user, utcnow()
    session.merge(row)
    session.commit()
    return session.get(AccuracyRow, subject)


def accuracies(session: Session, *, subjects: list[str] | None = None) -> dict[str, AccuracyRow]:
    query = select(AccuracyRow)
    if subjects is not None:
        query = query.where(AccuracyRow.subject.in_(subjects))
    return {row.subject: row for row in session.scalars(query)}
