"""Bounded request bodies, enforced before the body is parsed (an ASGI middleware)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exporters.errors import PayloadTooLargeError
from service.errors import error_response


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with a 413 in the project's error format: by
    Content-Length up front, else while streaming (a chunked body), answering in place of the
    app once the read is cut off."""

    def __init__(self, app: ASGIApp, limit: int, *, paths: dict[str, int] | None = None) -> None:
        self.app = app
        self.default = limit
        self.paths = paths or {}  # exact request paths with a bound of their own (uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope["path"], self.default)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await error_response(self._error(limit))(scope, receive, send)
            return
        seen, exceeded, started = 0, False, False

        async def bounded() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                exceeded = True
                raise self._error(limit)
            return message

        async def guarded(message: Message) -> None:
            """Whatever the app makes of the aborted read (FastAPI: a 400) is dropped."""
            nonlocal started
            if exceeded:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded, guarded)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await error_response(self._error(limit))(scope, receive, send)

    def _error(self, limit: int) -> PayloadTooLargeError:
        setting = (
            "LATBENCH_MAX_BODY_BYTES" if limit == self.default else "LATBENCH_MAX_ARTIFACT_BYTES"
        )
        return PayloadTooLargeError(f"request body exceeds {limit} bytes ({setting})")
