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


class LatbenchError(Exception):
    """Base class: ``str(error)`` is a message a user can act on."""


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
