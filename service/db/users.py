"""Users: a name, an admin flag and a token shown once and stored as its SHA-256 (a random
32-byte token needs no slow hash: nothing short enough to guess is ever stored)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from exporters.errors import ConflictError, NotFoundError
from service.db.engine import commit_new
from service.db.tables import UserRow, utcnow


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(session: Session, *, name: str, admin: bool) -> str:
    """A new user's token (returned once, never stored). Commits."""
    token = secrets.token_urlsafe(32)
    session.add(UserRow(name=name, token_hash=token_digest(token), admin=admin))
    if not commit_new(session):
        raise ConflictError(f"user {name!r} exists; pick another name", field="name")
    return token


def revoke_user(session: Session, *, name: str) -> UserRow:
    """Refuse ``name``'s token from now on; their jobs, uploads and results stay theirs."""
    row = session.get(UserRow, name)
    if row is None:
        raise NotFoundError(f"no user {name!r} (latbench users list)", field="name")
    row.revoked_at = row.revoked_at or utcnow()
    session.commit()
    return row


def list_users(session: Session) -> list[UserRow]:
    return list(session.scalars(select(UserRow).order_by(UserRow.created_at)))


def by_token(session: Session, token: str) -> UserRow | None:
    """The unrevoked user holding ``token``. The lookup is by digest: an index hit, and
    comparing digests leaks nothing of the token."""
    row = session.scalars(select(UserRow).where(UserRow.token_hash == token_digest(token))).first()
    return row if row is not None and row.revoked_at is None else None


def any_users(session: Session) -> bool:
    """Whether anyone was ever added: from then on every request needs a token."""
    return session.scalars(select(UserRow.name).limit(1)).first() is not None
