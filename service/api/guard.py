"""Text no store can keep is refused at the edge: a 422 naming where it was, before any route runs.

NUL cannot be stored in PostgreSQL text, and a lone surrogate (``"\\ud800"`` in JSON) cannot be
encoded as UTF-8 by either database, by the hash of a spec or by a JSON response: let through, both
surface later as a 500, or worse, as a stored row that breaks every listing that includes it. The
path, the query and a JSON body are checked; the body is read whole (BodyLimit, outside this
middleware, bounds it; the CallerGate, outside too, has identified the caller) and handed on
unchanged. JSON nested too deeply to parse is refused too, and so is any number that is not
finite (``NaN``, ``Infinity``, ``1e999``): no route, no stored result, no verdict takes one (a
``NaN`` ratio once reached the database and answered 500). A body with no Content-Type is
checked as JSON, as FastAPI parses it.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exporters.errors import SpecError
from service.errors import error_response


def bad_text(text: str) -> str | None:
    """What is wrong with ``text`` for storage, or None."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode text)"
    return None


def bad_json_text(value: Any) -> tuple[str, str] | None:
    """(dotted location, reason) of the first bad key, string or number in a parsed JSON
    document."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return where or "body", f"{item} is not a finite number"
        if isinstance(item, str):
            if reason := bad_text(item):
                return where or "body", reason
        elif isinstance(item, dict):
            for key, child in item.items():
                if reason := bad_text(key):
                    return where or "body", f"a key {reason}"
                stack.append((f"{where}.{key}" if where else key, child))
        elif isinstance(item, list):
            stack.extend((f"{where}.{i}" if where else str(i), c) for i, c in enumerate(item))
    return None


class TextGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = self._check_url(scope)
        if error is None and _is_json(scope):
            body, receive = await _buffered(receive)
            error = _check_body(body)
        if error is not None:
            await error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _check_url(scope: Scope) -> SpecError | None:
        if reason := bad_text(scope["path"]):
            return SpecError(f"the URL path {reason}", field="path")
        query = scope.get("query_string", b"").decode("latin-1")
        for name, value in parse_qsl(query, keep_blank_values=True):
            if reason := bad_text(name) or bad_text(value):
                return SpecError(f"query parameter {reason}", field=f"query.{name[:64]}")
        return None


def _is_json(scope: Scope) -> bool:
    content_type = dict(scope["headers"]).get(b"content-type", b"")
    return scope["method"] in {"POST", "PUT", "PATCH"} and (
        not content_type or b"json" in content_type.lower()
    )


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a receive that hands it on as one message, then defers to the
    original (for the disconnect)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body, sent = b"".join(chunks), False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


def _check_body(body: bytes) -> SpecError | None:
    try:
        document = json.loads(body)
    except RecursionError:
        return SpecError("JSON nested too deeply", field="body")
    except ValueError:
        return None  # not JSON: the route's own validation answers with its 422
    found = bad_json_text(document)
    if found is None:
        return None
    where, reason = found
    return SpecError(reason, field=where[:200])
