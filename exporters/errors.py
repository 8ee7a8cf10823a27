"""The one error tree of latbench (torch-free, shared by exporters, devices and service).

    LatbenchError                 anything latbench refuses or fails to do, with an actionable message
    ├── SpecError                 the user's input is invalid; ``field`` names the offending field
    │   └── UnknownModelError     no such model in the zoo; carries close matches
    ├── ExportError               an exporter failed; names the exporter and, when known, the op
    ├── EquivalenceError          train and deploy forms (or two forms of an op) compute different things
    ├── RunnerError               a device runner cannot measure
    │   └── RunnerUnavailableError    the runner cannot run on this host (e.g. CoreML on Linux)
    ├── NotFoundError             a stored object (job, result, artifact, runner) does not exist
    ├── ConflictError             the request contradicts stored state
    ├── QuotaError                a bounded resource (queue, body size) is full
    │   └── PayloadTooLargeError      a request body exceeds the configured bound
    ├── AuthError                 missing or wrong token
    └── BusyError                 the service cannot take the request now (database busy or down)

Third-party exceptions are wrapped at the boundary with ``raise ... from exc`` so callers handle
one tree; the API maps it to HTTP status codes once and the CLI to exit codes once.
"""

from __future__ import annotations

from typing import Any


class LatbenchError(Exception):
    """Base class: ``str(error)`` is a message a user can act on."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its message and attributes, not its constructor's arguments (several
        subclasses take others): an error raised in a bounded child reaches the parent whole."""
        return (_rebuilt, (type(self), self.args, self.__dict__))


def _rebuilt(cls: type[LatbenchError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class SpecError(LatbenchError):
    """Invalid user input; ``field`` is the dotted path of the offending field when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


def spec_error_from(
    errors: list[dict],
    *,
    prefix: tuple[str, ...] = (),
    default: str = "spec",
    skip: tuple[str, ...] = (),
) -> SpecError:
    """The first of pydantic's ``ValidationError.errors()`` as a SpecError naming its dotted field
    (``prefix`` prepended, ``skip`` parts such as FastAPI's "body" dropped)."""
    first = errors[0]
    parts = [*prefix, *(str(part) for part in first["loc"] if part not in skip)]
    return SpecError(first["msg"], field=".".join(parts) or default)


class UnknownModelError(SpecError):
    def __init__(self, name: str, suggestions: list[str]) -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f"; close matches: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(
            f"unknown model {name!r}{hint} (`latbench models` lists them)", field="model"
        )


class ExportError(LatbenchError):
    def __init__(self, exporter: str, message: str, *, op: str | None = None) -> None:
        self.exporter = exporter
        self.op = op
        where = f" at op {op!r}" if op else ""
        super().__init__(f"{exporter} export failed{where}: {message}")


class ArtifactUnavailableError(ExportError):
    """An export report holds no usable artifact of a format; the message is the export's own
    error as recorded in the report (already naming the exporter)."""

    def __init__(self, fmt: str, message: str) -> None:
        self.exporter, self.op = fmt, None
        LatbenchError.__init__(self, message)


class EquivalenceError(LatbenchError):
    """Two forms that must compute the same function do not."""


class RunnerError(LatbenchError):
    pass


class RunnerUnavailableError(RunnerError):
    pass


class NotFoundError(LatbenchError):
    """Something named by the request does not exist; ``field`` names where, when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class ConflictError(LatbenchError):
    pass


class QuotaError(LatbenchError):
    pass


class PayloadTooLargeError(QuotaError):
    pass


class AuthError(LatbenchError):
    pass


class BusyError(LatbenchError):
    """Transient: retry after ``retry_after_s`` seconds (the API says so in ``Retry-After``)."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


# The HTTP status of each error, most specific first (the first isinstance match wins): the API
# answers with it (``service.errors``) and a client decodes by it where the body names no class
# of this tree.
HTTP_STATUS: tuple[tuple[type[LatbenchError], int], ...] = (
    (SpecError, 422),
    (NotFoundError, 404),
    (ConflictError, 409),
    (PayloadTooLargeError, 413),
    (QuotaError, 429),
    (AuthError, 401),
    (BusyError, 503),
    (RunnerUnavailableError, 503),
    (ExportError, 422),
    (EquivalenceError, 422),
    (RunnerError, 502),
    (LatbenchError, 500),
)


def http_status(error: LatbenchError) -> int:
    return next(code for cls, code in HTTP_STATUS if isinstance(error, cls))


def _tree() -> dict[str, type[LatbenchError]]:
    """Every class of this tree by name (only this module's: what a client can decode into)."""
    found, todo = {}, [LatbenchError]
    while todo:
        cls = todo.pop()
        if cls.__module__ == __name__:
            found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def error_from_answer(
    status: int, body: object, text: str = "", *, retry_after: str | None = None
) -> LatbenchError:
    """The error an HTTP error answer stands for, the one client-side decoder (the CLI, the gate,
    the remote client and the runner's HTTP port all use it): the class the API's body names
    (``{"error": class, "detail": message, "field": dotted field}``) with the server's own
    message and field, so ``str(error)`` reads as on the server; a class this tree lacks (a
    server-only subclass) or a body that is not the API's (a proxy's page) gives the first class
    of ``status`` in HTTP_STATUS, LatbenchError for a status it lacks. ``retry_after`` (the
    header) sets a BusyError's ``retry_after_s``."""
    named = body if isinstance(body, dict) and isinstance(body.get("detail"), str) else None
    cls = _tree().get(str(named.get("error"))) if named else None
    if cls is None:
        cls = next((c for c, code in HTTP_STATUS if code == status), LatbenchError)
    message = named["detail"] if named else f"server answered {status}: {text[:300]}"
    error = cls.__new__(cls)  # the server built the message: no constructor rebuilds it
    Exception.__init__(error, message)
    defaults: dict[str, object] = {"field": named.get("field") if named else None}
    if isinstance(error, BusyError):
        defaults["retry_after_s"] = int(retry_after) if (retry_after or "").isdigit() else 1
    if isinstance(error, ExportError):
        defaults.update(exporter=None, op=None)
    if isinstance(error, UnknownModelError):
        defaults.update(name=None, suggestions=[])
    for name, value in defaults.items():
        setattr(error, name, value)
    return error


def error_from_response(response: Any) -> LatbenchError:
    """``error_from_answer`` of an httpx response (read: a streamed one must be read first)."""
    body = None
    if "json" in response.headers.get("content-type", ""):
        try:
            body = response.json()
        except ValueError:  # a broken body: decoded by its status alone
            body = None
    return error_from_answer(
        response.status_code, body, response.text, retry_after=response.headers.get("retry-after")
    )
