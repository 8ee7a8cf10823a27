"""User-attached top-1 rows: set (replacing the previous one) and read, keyword-only."""

from __future__ import annotations

from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from exporters.errors import ConflictError, NotFoundError
from service.auth import Caller
from service.db import owners
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
    caller: Caller,
) -> AccuracyRow:
    """Attach top-1 to a stored spec ``caller`` may see; NotFoundError when nothing with that
    hash was stored, or it is someone else's upload (the accuracy belongs to what was measured,
    so it must exist first). A figure is replaced by whoever set it or an admin only. Commits."""
    if session.get(SpecRow, subject) is None or not owners.may_see(session, caller, [subject]):
        raise NotFoundError(
            f"no stored spec with hash {subject!r}: profile it first (POST /profile)"
        )
    row = session.get(AccuracyRow, subject) or AccuracyRow(subject=subject)
    if row.user is not None and row.user != caller.name and not caller.admin:
        raise ConflictError(
            f"the top-1 of {subject} was set by {row.user}: only they or an admin replace it"
        )
    user = caller.name
    row.top1, row.dataset, row.resolution = top1, dataset, resolution
    row.source, row.note, row.user, row.created_at = source, note, user, utcnow()
    session.merge(row)
    session.commit()
    return session.get(AccuracyRow, subject)


def accuracies(
    session: Session, *, subjects: list[str] | None = None, viewer: str | None = None
) -> dict[str, AccuracyRow]:
    """By subject; ``viewer``: only figures on what they may see (None: all, an admin)."""
    query = select(AccuracyRow)
    if viewer is not None:
        query = query.where(owners.visible(AccuracyRow.subject, literal(viewer)))
    if subjects is not None:
        query = query.where(AccuracyRow.subject.in_(subjects))
    return {row.subject: row for row in session.scalars(query)}
