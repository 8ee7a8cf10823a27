"""Who is asking: a ``Caller`` from the request's bearer token, decided before any body is read.

- the configured API token (``LATBENCH_API_TOKEN``) is the bootstrap admin, ``admin``;
- a user's token (``latbench users add``) is that user, an admin if added with ``--admin``;
- no API token and no user ever added, on loopback: one person on a laptop, ``local``, an admin.
Anything else is refused (401). Runners are not callers: they show their own credential on the
``/runners`` routes.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from exporters.errors import AuthError
from service.db import users
from service.settings import Settings

BOOTSTRAP_ADMIN = "admin"
LOCAL = "local"


@dataclass(frozen=True)
class Caller:
    """Who is asking: the name jobs, uploads and figures record as owner; an admin sees all."""

    name: str
    admin: bool


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input (a header decoded as Latin-1),
    on which ``hmac.compare_digest`` of two str raises TypeError."""
    return hmac.compare_digest(given.encode(), expected.encode())


class Directory:
    """The users as one API process knows them. Whether anyone was ever added is cached: once
    seen it stays so (users are never deleted, only revoked); absence is looked up again at
    most every ``recheck_s``, so a laptop's requests need no query to be the one person."""

    def __init__(self, sessions: Callable[[], Session], recheck_s: float = 1.0) -> None:
        self.sessions = sessions
        self.recheck_s = recheck_s
        self._anyone = False
        self._checked_at = -math.inf

    def answers_now(self, settings: Settings, token: str | None) -> bool:
        """Whether ``identify`` needs no database: the API token, or a laptop known empty."""
        if token and settings.api_token and same_secret(token, settings.api_token):
            return True
        fresh = time.monotonic() - self._checked_at < self.recheck_s
        return not settings.api_token and not token and fresh and not self._anyone

    def identify(self, settings: Settings, token: str | None) -> Caller:
        """The caller holding ``token`` (None: no Authorization header); AuthError otherwise."""
        if token and settings.api_token and same_secret(token, settings.api_token):
            return Caller(BOOTSTRAP_ADMIN, admin=True)
        if token:
            with self.sessions() as session:
                row = users.by_token(session, token)
            if row is not None:
                return Caller(row.name, admin=row.admin)
        if not settings.api_token and not self._anyone_added():
            return Caller(LOCAL, admin=True)  # loopback: Settings requires a token elsewhere
        raise AuthError(
            "missing, wrong or revoked API token (Authorization: Bearer <token>; "
            "latbench users add NAME gives one)"
        )

    def _anyone_added(self) -> bool:
        if not self._anyone and time.monotonic() - self._checked_at >= self.recheck_s:
            with self.sessions() as session:
                self._anyone = users.any_users(session)
            self._checked_at = time.monotonic()
        return self._anyone
