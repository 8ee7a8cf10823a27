"""Who owns what, and who may see it. An upload (a user's own model) is private to its owners
and admins, and so is every job and result that measures it; a zoo or spec measurement is the
team's shared fact, visible to all. Someone else's private id answers the same 404 as an id that
does not exist, so ids leak nothing."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, String, cast, exists, func, literal, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from exporters.errors import NotFoundError, QuotaError
from service.auth import BOOTSTRAP_ADMIN, LOCAL, Caller
from service.db.artifacts import UPLOADED, no_upload, uploaded
from service.db.engine import commit_new
from service.db.tables import ArtifactRow, JobRow, SpecRow, UploadRow, UserRow

RESERVED = frozenset({BOOTSTRAP_ADMIN, LOCAL})  # callers no ``users add`` may impersonate


def record_owner(
    session: Session, *, key: str, content_hash: str, owner: str, size_bytes: int, room: int
) -> None:
    """``owner`` uploaded ``key`` (again: nothing changes), within the ``room`` left of their
    quota (``upload_room``; QuotaError past it). Commits."""
    if session.get(UploadRow, (key, owner)) is None:
        if size_bytes > room:
            raise QuotaError(
                f"{size_bytes} bytes exceed the {room} left of {owner}'s upload quota "
                "(LATBENCH_MAX_UPLOAD_BYTES_PER_USER)"
            )
        session.add(
            UploadRow(artifact_key=key, content_hash=content_hash, owner=owner,
                      size_bytes=size_bytes)
        )  # fmt: skip
        commit_new(session)


def upload_room(session: Session, *, owner: str, quota: int) -> int:
    """Bytes ``owner`` may still upload under ``quota``; QuotaError when none are left."""
    used = session.scalar(
        select(func.coalesce(func.sum(UploadRow.size_bytes), 0)).where(UploadRow.owner == owner)
    )
    room = quota - int(used or 0)
    if room <= 0:
        raise QuotaError(
            f"{owner} has uploaded {used} bytes, the quota (LATBENCH_MAX_UPLOAD_BYTES_PER_USER);"
            " an admin frees some with latbench gc"
        )
    return room


def caller_named(session: Session, name: str) -> Caller:
    """The caller a stored owner name stands for (submission code knows only the name)."""
    if name in RESERVED:
        return Caller(name, admin=True)
    row = session.get(UserRow, name)
    return Caller(name, admin=bool(row and row.admin))


def visible(column: InstrumentedAttribute[str], viewer: ColumnElement[str]) -> ColumnElement:
    """SQL: the spec hash in ``column`` is no upload, or one that ``viewer`` uploaded."""
    uploads = select(SpecRow.hash).where(SpecRow.family == UPLOADED)
    owned = select(UploadRow.content_hash).where(UploadRow.owner == viewer)
    return or_(column.not_in(uploads), column.in_(owned))


def visible_job(viewer: ColumnElement[str]) -> ColumnElement[bool]:
    """SQL: every spec the job measures (its first, ``jobs.spec_hash``, and each side of a
    compare job in ``jobs.specs``) is no upload, or one ``viewer`` uploaded. In the listing's
    own statement, so its count and its pages agree: a check of the first spec alone counted a
    compare job against someone else's upload that the page then had to leave out. ``specs`` is
    a JSON object of role -> hash, read as text on both databases (no JSON function is common to
    SQLite and PostgreSQL): a hash is one of its values exactly when it appears there quoted
    (hex hashes hold no LIKE wildcard, and the keys are role names)."""
    hidden = select(literal(1)).where(
        SpecRow.family == UPLOADED,
        SpecRow.hash.not_in(select(UploadRow.content_hash).where(UploadRow.owner == viewer)),
        or_(
            SpecRow.hash == JobRow.spec_hash,
            cast(JobRow.specs, String).like(literal('%"') + SpecRow.hash + literal('"%')),
        ),
    )
    return ~exists(hidden.correlate(JobRow))


def may_see(session: Session, caller: Caller, spec_hashes: Iterable[str]) -> bool:
    """Whether ``caller`` may see what measures every one of ``spec_hashes``."""
    if caller.admin:
        return True
    hashes = set(spec_hashes)
    private = set(
        session.scalars(
            select(SpecRow.hash).where(SpecRow.hash.in_(hashes), SpecRow.family == UPLOADED)
        )
    )
    if not private:
        return True
    owned = session.scalars(
        select(UploadRow.content_hash).where(
            UploadRow.content_hash.in_(private), UploadRow.owner == caller.name
        )
    )
    return private <= set(owned)


def uploaded_for(session: Session, *, key: str, field: str, user: str) -> ArtifactRow:
    """The uploaded artifact ``key`` if ``user`` may measure it (``artifacts.uploaded``'s 404
    otherwise, word for word)."""
    row = uploaded(session, key=key, field=field)
    if may_see(session, caller_named(session, user), [row.spec_hash]):
        return row
    raise no_upload(key, field)


def require_visible(
    session: Session, caller: Caller, spec_hashes: Iterable[str], *, what: str
) -> None:
    """NotFoundError, worded as for a missing ``what``, unless ``caller`` may see it."""
    if not may_see(session, caller, spec_hashes):
        raise NotFoundError(f"no {what}")
