"""Registered runners: a per-runner token (stored hashed), heartbeats, offline detection; and
the credentials an admin provisions, each bound to device classes, revocable with its runners."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from exporters.errors import AuthError, ConflictError, NotFoundError, QuotaError
from service.db.engine import commit_new
from service.db.tables import (
    ComparisonRow,
    JobRow,
    PredictionRow,
    ResultRow,
    RunnerCredentialRow,
    RunnerRow,
    utcnow,
)

log = logging.getLogger(__name__)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def lock_registrations(session: Session, *, credential: str | None) -> None:
    """Registrations under one credential one at a time, until this transaction ends: two under
    one name cannot both find it free, nor two pass the cap together. PostgreSQL: an advisory
    lock of the transaction; SQLite serializes every writing transaction already."""
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"latbench runners {credential or ''}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    session.execute(select(func.pg_advisory_xact_lock(key)))


def register_runner(
    session: Session,
    *,
    device_class: str,
    description: dict[str, Any],
    runner_id: str | None = None,
    credential: str | None = None,
    name: str | None = None,
) -> tuple[RunnerRow, str]:
    """A runner row (new, or ``runner_id`` re-registered) and a fresh bearer token, shown once and
    stored only as a hash: the row's old token stops working. Commits."""
    token = secrets.token_urlsafe(32)
    row = RunnerRow(
        id=runner_id or uuid.uuid4().hex,
        device_class=device_class,
        description=description,
        token_hash=_digest(token),
        online=True,
        current_job_id=None,
        last_heartbeat=utcnow(),
        credential=credential,
        name=name,
    )
    row = session.merge(row)
    session.commit()
    return row, token


def _live(credential: str | None) -> ColumnElement[bool]:
    """SQL: unrevoked runners registered with ``credential`` (None: the shared token, or no
    token on loopback)."""
    registered = (
        RunnerRow.credential.is_(None) if credential is None else RunnerRow.credential == credential
    )
    return and_(registered, RunnerRow.revoked_at.is_(None))


def live_named(session: Session, *, credential: str | None, name: str) -> RunnerRow | None:
    """The unrevoked runner registered as ``name`` with ``credential``: the row a registration
    under that name takes back (a revoked one stays revoked, with its results' provenance)."""
    query = select(RunnerRow).where(_live(credential), RunnerRow.name == name)
    return session.scalars(query.order_by(RunnerRow.registered_at)).first()


def require_room(session: Session, *, credential: str | None, cap: int) -> None:
    """QuotaError, naming the cap and its setting, when ``credential`` (None: the shared token)
    holds ``cap`` live runner rows already: one leaked token cannot fill the table."""
    held = session.scalar(select(func.count()).where(_live(credential))) or 0
    if held >= cap:
        who = f"runner credential {credential!r}" if credential else "the shared runner token"
        raise QuotaError(
            f"{who} holds {held} live runner registrations, its cap "
            f"(LATBENCH_MAX_RUNNERS_PER_CREDENTIAL={cap}): register again under one of their "
            "names (latbench runner --name), revoke one (latbench runners revoke ID), or let "
            "latbench gc prune the silent ones"
        )


def prune_silent(session: Session, *, silent_before: datetime, dry_run: bool = False) -> list[str]:
    """Delete the runner rows silent since ``silent_before`` that hold no job and that no job,
    result, comparison or prediction names; their ids (with ``dry_run``, what would go). A row
    something names stays for good: a result's provenance is its runner row, and revocation is
    read from it (a revoked runner's result pruned of its row would answer as cached again).
    A pruned runner that is still alive is told so (404, field ``runner_id``) and registers
    again. Commits."""
    named = [
        select(table.runner_id).where(table.runner_id.is_not(None))
        for table in (JobRow, ResultRow, ComparisonRow, PredictionRow)
    ]
    query = select(RunnerRow.id).where(
        RunnerRow.last_heartbeat < silent_before,
        RunnerRow.current_job_id.is_(None),
        *(RunnerRow.id.not_in(ids) for ids in named),
    )
    ids = list(session.scalars(query.order_by(RunnerRow.last_heartbeat)))
    if ids and not dry_run:
        session.execute(delete(RunnerRow).where(RunnerRow.id.in_(ids)))
        session.commit()
    return ids


def authenticate(session: Session, *, runner_id: str, token: str | None) -> RunnerRow:
    row = session.get(RunnerRow, runner_id)
    if row is None:  # never registered, or pruned (the field tells the agent to register again)
        raise NotFoundError(f"no runner {runner_id!r}; register again", field="runner_id")
    if not token or not hmac.compare_digest(row.token_hash, _digest(token)):
        raise AuthError(f"wrong token for runner {runner_id!r}")
    if row.revoked_at is not None:
        raise AuthError(f"runner {runner_id!r} was revoked by an admin")
    return row


def heartbeat(session: Session, *, runner: RunnerRow) -> None:
    runner.last_heartbeat = utcnow()
    runner.online = True
    session.commit()


def beat(sessions: Callable[[], Session], *, runner_id: str) -> bool:
    """One heartbeat of the embedded runner in its own short session; False, logged, when the
    database refused it (locked, unreachable), so the heartbeat loop goes on to the next beat
    instead of its thread dying and the runner being declared dead while it works."""
    try:
        with sessions() as session:
            row = session.get(RunnerRow, runner_id)
            if row is None:
                return False
            heartbeat(session, runner=row)
            return True
    except SQLAlchemyError as exc:
        log.warning("heartbeat of runner %s not recorded: %s", runner_id, exc)
        return False


def set_current_job(session: Session, *, runner_id: str, job_id: str | None) -> None:
    """Link the runner to the job it holds (None: to none). Commits, and with it whatever the
    caller's transaction holds (a claim's move: the two land together or not at all)."""
    session.execute(
        update(RunnerRow).where(RunnerRow.id == runner_id).values(current_job_id=job_id)
    )
    session.commit()


def mark_stale_offline(session: Session, *, cutoff: datetime) -> list[RunnerRow]:
    """Runners silent since ``cutoff`` go offline; returned so their jobs can be requeued."""
    stale = list(
        session.scalars(
            select(RunnerRow).where(RunnerRow.online.is_(True), RunnerRow.last_heartbeat < cutoff)
        )
    )
    for row in stale:
        row.online = False
    session.commit()
    return stale


def list_runners(session: Session) -> list[RunnerRow]:
    return list(session.scalars(select(RunnerRow).order_by(RunnerRow.registered_at)))


def online_classes(registered: Iterable[RunnerRow], *, cutoff: datetime) -> set[str]:
    """Device classes of the ``registered`` runners (``list_runners``) marked online whose last
    heartbeat is after ``cutoff``: computed from rows a caller may already hold (GET /devices)."""
    return {r.device_class for r in registered if r.online and r.last_heartbeat >= cutoff}


def add_credential(session: Session, *, name: str, device_classes: list[str]) -> str:
    """A runner credential for ``device_classes``; its token (returned once, stored hashed)."""
    token = secrets.token_urlsafe(32)
    row = RunnerCredentialRow(
        name=name, device_classes=sorted(set(device_classes)), token_hash=_digest(token)
    )
    session.add(row)
    if not commit_new(session):
        raise ConflictError(f"runner credential {name!r} exists; pick another name", field="name")
    return token


def credential_by_token(session: Session, token: str) -> RunnerCredentialRow | None:
    """The unrevoked credential holding ``token`` (looked up by digest, as users are)."""
    query = select(RunnerCredentialRow).where(RunnerCredentialRow.token_hash == _digest(token))
    row = session.scalars(query).first()
    return row if row is not None and row.revoked_at is None else None


def list_credentials(session: Session) -> list[RunnerCredentialRow]:
    return list(session.scalars(select(RunnerCredentialRow).order_by(RunnerCredentialRow.name)))


def revoke(session: Session, *, name: str) -> list[str]:
    """Revoke the credential ``name`` and every runner it registered, or the one runner whose
    id is ``name``: they are refused from now on, and their results no longer answer a request
    as cached. The runner ids revoked. Commits."""
    now = utcnow()
    credential = session.get(RunnerCredentialRow, name)
    if credential is not None:
        credential.revoked_at = credential.revoked_at or now
    query = select(RunnerRow).where(or_(RunnerRow.credential == name, RunnerRow.id == name))
    revoked = list(session.scalars(query))
    if credential is None and not revoked:
        raise NotFoundError(f"no runner credential or runner {name!r} (latbench runners list)")
    for row in revoked:
        row.revoked_at = row.revoked_at or now
        row.online = False
    session.commit()
    return [row.id for row in revoked]


def revoked_runners() -> Select[tuple[str]]:
    """SQL: the ids of revoked runners (a result of theirs is no cache hit)."""
    return select(RunnerRow.id).where(RunnerRow.revoked_at.is_not(None))
