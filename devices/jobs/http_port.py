"""The job port over HTTP: a remote runner claims, fetches artifacts and posts results through
the server's /runners API, so a device host needs no database and no shared disk.

Delivery survives a busy server: claim, result and failure posts are retried on 503 (the server
sends it, with ``Retry-After``, when its database is busy: nothing was done) and on a connection
that never opened, with exponential backoff that honours ``Retry-After``, within ``Retry``'s
bounds. A result or failure post is also retried when the connection broke after sending (the
server keeps one result per job and attempt, so a repeat changes nothing); a claim is not (a
claim that did land would answer the repeat 409, and the runner would drop its own job). A
result the server refuses (422, 413) is reported at once as the job's failure, with the reason,
instead of leaving the job to its timeout.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from devices.jobs.port import JobTask
from exporters.artifacts import artifact_size_bytes
from exporters.errors import ConflictError, NotFoundError, RunnerError, error_from_response
from exporters.formats import DeviceClass, ExportFormat

log = logging.getLogger(__name__)
T = TypeVar("T")

BUSY = {429, 502, 503, 504}
CACHE_BYTES = (
    10 * 2**30
)  # the runner's artifact cache bound, by default  # the server (or a proxy before it) did nothing: try again


@dataclass(frozen=True)
class Retry:
    """How long a post is retried: ``attempts`` tries at most, waits doubling from ``base_s``
    (or the server's ``Retry-After``), each at most ``max_wait_s``, all within ``budget_s``."""

    attempts: int = 8
    base_s: float = 0.5
    max_wait_s: float = 30.0
    budget_s: float = 300.0

    def wait(self, attempt: int, response: httpx.Response | None) -> float:
        said = response.headers.get("retry-after", "") if response is not None else ""
        wait = float(said) if said.isdigit() else self.base_s * 2**attempt
        return min(wait, self.max_wait_s)


def private_dir(path: Path) -> Path:
    """``path`` created or made owner-only (0700): fetched artifacts are run as models, so no
    other user of the host may plant one under a key's name. RunnerError when another user owns
    it (a directory someone pre-created in a shared /tmp)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise RunnerError(f"artifact cache {path} belongs to another user; choose --cache")
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def default_cache() -> Path:
    """The runner's cache in the user's own cache directory (XDG), never a world-writable /tmp."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "latbench" / "runner"


class HttpPort:
    """The runner side of the server's /runners API; artifacts are cached under ``cache`` (made
    private), the least recently used dropped past ``cache_bytes``."""

    def __init__(
        self,
        server: str,
        *,
        cache: Path,
        timeout: float = 60.0,
        http: httpx.Client | None = None,
        retry: Retry = Retry(),
        sleep: Callable[[float], None] = time.sleep,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        self.http = http or httpx.Client(base_url=server.rstrip("/"), timeout=timeout)
        self.cache = private_dir(cache)
        self.cache_bytes = cache_bytes
        self.runner_id = ""
        self._registration: tuple[DeviceClass, str | None, str | None] | None = None
        self._registering = threading.Lock()
        self.retry = retry
        self.sleep = sleep

    def _post(self, path: str, body: dict[str, Any], *, idempotent: bool) -> httpx.Response:
        """POST with retries (module docstring); the last answer, or the last connection
        error raised as RunnerError once the bounds are spent."""
        deadline = time.monotonic() + self.retry.budget_s
        for attempt in range(self.retry.attempts):
            response: httpx.Response | None = None
            try:
                response = self.http.post(path, json=body)
                if response.status_code not in BUSY:
                    return response
                problem = f"server answered {response.status_code}"
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                problem = f"cannot reach the server: {exc}"
            except httpx.TransportError as exc:
                if not idempotent:
                    raise RunnerError(f"POST {path}: connection broke: {exc}") from exc
                problem = f"connection broke: {exc}"
            wait = self.retry.wait(attempt, response)
            if attempt + 1 == self.retry.attempts or time.monotonic() + wait > deadline:
                if response is not None:
                    return response
                raise RunnerError(f"POST {path}: {problem}; gave up after {attempt + 1} tries")
            log.warning("POST %s: %s; retrying in %.1f s", path, problem, wait)
            self.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _check(self, response: httpx.Response) -> httpx.Response:
        """The answer, unless it is a refusal: then the error class the server named."""
        if response.is_error:
            raise error_from_response(response)
        return response

    def register(
        self, device_class: DeviceClass, registration_token: str | None, name: str | None = None
    ) -> dict[str, Any]:
        """Register (under ``name``: again after a restart, the same row) and act as the runner
        the server answered with; kept, to register again if the server pruned the row."""
        from devices.host import host_facts

        self._registration = (device_class, registration_token, name)
        headers = {"Authorization": f"Bearer {registration_token}"} if registration_token else {}
        body: dict[str, Any] = {"device_class": device_class.value, "description": host_facts()}
        if name:
            body["name"] = name
        data = self._check(self.http.post("/runners", json=body, headers=headers)).json()
        self.runner_id = data["id"]
        self.http.headers["Authorization"] = f"Bearer {data['token']}"
        return data

    def _as_runner(self, call: Callable[[], T]) -> T:
        """``call`` (which reads ``runner_id`` when it runs); when the server answers that this
        runner's row is gone (404 naming ``runner_id``: pruned after a long silence), register
        again as before and call once more, so pruning never strands a live runner. One thread
        registers; another that found the row gone meanwhile uses its registration."""
        seen = self.runner_id
        try:
            return call()
        except NotFoundError as exc:
            if exc.field != "runner_id" or self._registration is None:
                raise
            with self._registering:
                if self.runner_id == seen:
                    log.warning("runner %s: %s; registering again", seen, exc)
                    self.register(*self._registration)
        return call()

    def heartbeat(self) -> None:
        self._as_runner(lambda: self._check(self.http.post(f"/runners/{self.runner_id}/heartbeat")))

    def claim(self, task: JobTask) -> bool:
        body = {"job_id": task.job_id, "attempt": task.attempt}
        try:
            self._as_runner(
                lambda: self._check(
                    self._post(f"/runners/{self.runner_id}/claim", body, idempotent=False)
                )
            )
        except ConflictError:
            return False
        return True

    def fetch_artifact(self, task: JobTask, key: str) -> Path:
        """Download once per key into the cache, checking the server's SHA-256."""
        cache = self.cache
        suffix = ExportFormat(task.format).suffix
        dest = cache / f"{key}{suffix}"
        if dest.exists():
            os.utime(dest)  # its last use, for the bound
            return dest
        partial = cache / f"{key}.part"
        digest = hashlib.sha256()
        url = f"/runners/{self.runner_id}/artifacts/{key}"
        with self.http.stream("GET", url) as response:
            if response.is_error:
                response.read()  # a streamed body is unread: _check needs it for the message
            self._check(response)
            expected = response.headers.get("x-artifact-sha256")
            packed = response.headers.get("x-artifact-packing") == "tar"
            with open(partial, "wb") as out:
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    out.write(chunk)
        if expected and digest.hexdigest() != expected:
            partial.unlink()
            raise RunnerError(f"artifact {key} arrived corrupted (sha256 mismatch)")
        if packed:  # a directory artifact (.mlpackage) travels as a tar of its contents
            _extract(partial, dest)
        else:
            partial.replace(dest)
        self._bound(keep=dest)
        return dest

    def _bound(self, *, keep: Path) -> None:
        """Drop the least recently used artifacts past ``cache_bytes`` (never ``keep``, the one
        just fetched; a compare job's other side, if dropped, is fetched again)."""
        entries = sorted(
            (p for p in self.cache.iterdir() if not p.name.endswith((".part", ".tmp"))),
            key=lambda p: p.stat().st_mtime,
        )
        sizes = {p: artifact_size_bytes(p) for p in entries}
        total = sum(sizes.values())
        for path in entries:
            if total <= self.cache_bytes:
                return
            if path == keep:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            total -= sizes[path]

    def post_result(self, task: JobTask, result: BaseModel) -> None:
        body = {
            "job_id": task.job_id,
            "attempt": task.attempt,
            "result": result.model_dump(mode="json", exclude_unset=True),
        }
        response = self._post(f"/runners/{self.runner_id}/results", body, idempotent=True)
        if response.status_code in (413, 422):  # never stored: the job fails now, with why
            reason = f"the server refused the result ({response.status_code}): " + _detail(response)
            self.post_failure(task, reason)
            raise RunnerError(reason)
        self._check(response)

    def post_failure(self, task: JobTask, error: str) -> None:
        body = {"job_id": task.job_id, "attempt": task.attempt, "error": error}
        try:
            self._check(self._post(f"/runners/{self.runner_id}/failures", body, idempotent=True))
        except ConflictError as exc:  # requeued or failed meanwhile: nothing of ours to fail
            log.info("failure of job %s attempt %s refused: %s", task.job_id, task.attempt, exc)


def _detail(response: httpx.Response) -> str:
    """The error body's detail and field, short, or its first bytes when it is not JSON."""
    try:
        doc = response.json()
        field = f" ({doc['field']})" if doc.get("field") else ""
        return f"{doc.get('detail', '')}{field}"[:500]
    except (ValueError, AttributeError):
        return response.text[:300]


def _extract(archive_path: Path, dest: Path) -> None:
    """Unpack beside ``dest`` and rename into place, so a failed extraction never leaves a
    half-written directory that a later fetch would take as cached."""
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f"{dest.name}.", suffix=".tmp"))
    try:
        with tarfile.open(archive_path) as archive:
            archive.extractall(staging, filter="data")
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        archive_path.unlink(missing_ok=True)
