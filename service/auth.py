"""Who is asking: a ``Caller`` from the request's bearer token, decided before any body is read.

- the configured API token (``LATBENCH_API_TOKEN``) is the bootstrap admin, ``admin``;
- a user's token (``latbench users add``) is that user, an admin if added with ``--admin``;
- no API token and no user ever added, on loopback: one person on a laptop, ``local``, an admin.
Anything else is refused (401). Runners are not callers: they show their own credential on the
``/runners`` routes.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from sqlalchemy.orm import Session

from exporters.errors import AuthError
from service.db import users
from service.settings import Settings

BOOTSTRAP_ADMIN = "admin"
LOCAL = "local"


@dataclass(frozen=True)
class Caller:
    name: str
    admin: bool

    def may_see(self, owners: set[str]) -> bool:
        """Whether this caller sees something only ``owners`` and admins may see."""
        return self.admin or self.name in owners


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input (a header decoded as Latin-1),
    on which ``hmac.compare_digest`` of two str raises TypeError."""
    return hmac.compare_digest(given.encode(), expected.encode())


def identify(settings: Settings, session: Session, token: str | None) -> Caller:
    """The caller holding ``token`` (None: no Authorization header); AuthError otherwise."""
    if token and settings.api_token and same_secret(token, settings.api_token):
        return Caller(BOOTSTRAP_ADMIN, admin=True)
    if token and (row := users.by_token(session, token)) is not None:
        return Caller(row.name, admin=row.admin)
    if not settings.api_token and not users.any_users(session):
        return Caller(LOCAL, admin=True)  # loopback is guaranteed by Settings without a token
    raise AuthError(
        "missing, wrong or revoked API token (Authorization: Bearer <token>; "
        "latbench users add NAME gives one)"
    )
