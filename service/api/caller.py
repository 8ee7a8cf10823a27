"""Nothing is read before the caller is known (an ASGI middleware, outside the body guards).

- In loopback mode the Host header must name this machine: a web page on a domain its
  attacker re-points at 127.0.0.1 (DNS rebinding) reaches the port, but not with our Host.
- Every request is identified from its token here, before any route or dependency takes a
  session slot (a lookup inside a route would wait for a second slot while holding one, and a
  full pool would wedge). A request with a body (POST, PUT, PATCH) from a stranger is refused
  at once: its body is never buffered, parsed or streamed. Any other keeps the refusal for the
  route to raise if it needs a caller (``/healthz`` does not). ``/runners`` routes check the
  runner's own credential instead (their bodies are small and bounded).
- ``/artifacts`` takes ``application/octet-stream`` only: the one upload route never buffers a
  body as JSON, and a browser cannot send it cross-site without a preflight.
"""

from __future__ import annotations

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from exporters.errors import AuthError, LatbenchError, SpecError
from service import errors
from service.api.deps import CALLER, identify_request
from service.errors import error_response
from service.settings import Settings, is_loopback

BODY_METHODS = {"POST", "PUT", "PATCH"}
UPLOAD_PATH = "/artifacts"
UPLOAD_TYPE = "application/octet-stream"
MAX_HOST_NAME = 253  # DNS's limit: a longer Host names no machine (and stays out of the cache)


class CallerGate:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.loopback = is_loopback(settings.host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check_host(scope)
            if not scope["path"].startswith("/runners"):
                await _identify(scope)
        except LatbenchError as error:
            await error_response(error)(scope, receive, send)
            return
        except (OperationalError, PoolTimeoutError) as error:  # outside the app's handlers
            await errors.database_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check_host(self, scope: Scope) -> None:
        if not self.loopback:
            return  # every request needs a token there
        host = _header(scope, b"host")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]").lower()
        local = len(name) <= MAX_HOST_NAME and is_loopback(name)
        if local or name in self.settings.allowed_hosts:
            return
        raise SpecError(
            f"Host {host[:100]!r} is not this machine: a loopback server answers only "
            "localhost, 127.0.0.1 or [::1] (add a name to LATBENCH_ALLOWED_HOSTS)",
            field="headers.host",
        )


async def _identify(scope: Scope) -> None:
    """The caller, or the refusal, in the scope for the routes (``deps.CallerDep``)."""
    try:
        scope[CALLER] = await identify_request(Request(scope))
    except AuthError as refusal:
        if scope["method"] in BODY_METHODS:
            raise
        scope[CALLER] = refusal
        return
    if scope["method"] in BODY_METHODS:
        _check_upload_type(scope)


def _check_upload_type(scope: Scope) -> None:
    if scope["path"] != UPLOAD_PATH:
        return
    given = _header(scope, b"content-type").split(";", 1)[0].strip().lower()
    if given != UPLOAD_TYPE:
        raise SpecError(
            f"POST /artifacts takes the file's bytes as Content-Type: {UPLOAD_TYPE}, "
            f"not {given[:100] or 'none'!r}",
            field="headers.content-type",
        )


def _header(scope: Scope, name: bytes) -> str:
    return dict(scope["headers"]).get(name, b"").decode("latin-1")
