"""The job port over HTTP: a remote runner claims, fetches artifacts and posts results through
the server's /runners API, so a device host needs no database and no shared disk."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from devices.jobs.port import JobTask
from exporters.errors import ConflictError, RunnerError, error_from_response
from exporters.formats import DeviceClass, ExportFormat

log = logging.getLogger(__name__)


class HttpPort:
    """The runner side of the server's /runners API; artifacts are cached under ``cache``."""

    def __init__(
        self,
        server: str,
        *,
        cache: Path,
        timeout: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.http = http or httpx.Client(base_url=server.rstrip("/"), timeout=timeout)
        self.cache = cache
        self.runner_id = ""

    def _check(self, response: httpx.Response) -> httpx.Response:
        """The answer, unless it is a refusal: then the error class the server named."""
        if response.is_error:
            raise error_from_response(response)
        return response

    def register(self, device_class: DeviceClass, registration_token: str | None) -> dict[str, Any]:
        from devices.host import host_facts

        headers = {"Authorization": f"Bearer {registration_token}"} if registration_token else {}
        body = {"device_class": device_class.value, "description": host_facts()}
        data = self._check(self.http.post("/runners", json=body, headers=headers)).json()
        self.runner_id = data["id"]
        self.http.headers["Authorization"] = f"Bearer {data['token']}"
        return data

    def heartbeat(self) -> None:
        self._check(self.http.post(f"/runners/{self.runner_id}/heartbeat"))

    def claim(self, task: JobTask) -> bool:
        body = {"job_id": task.job_id, "attempt": task.attempt}
        try:
            self._check(self.http.post(f"/runners/{self.runner_id}/claim", json=body))
        except ConflictError:
            return False
        return True

    def fetch_artifact(self, task: JobTask, key: str) -> Path:
        """Download once per key into the cache, checking the server's SHA-256."""
        cache = self.cache
        suffix = ExportFormat(task.format).suffix
        dest = cache / f"{key}{suffix}"
        if dest.exists():
            return dest
        cache.mkdir(parents=True, exist_ok=True)
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
        return dest

    def post_result(self, task: JobTask, result: BaseModel) -> None:
        body = {
            "job_id": task.job_id,
            "attempt": task.attempt,
            "result": result.model_dump(mode="json", exclude_unset=True),
        }
        self._check(self.http.post(f"/runners/{self.runner_id}/results", json=body))

    def post_failure(self, task: JobTask, error: str) -> None:
        body = {"job_id": task.job_id, "attempt": task.attempt, "error": error}
        try:
            self._check(self.http.post(f"/runners/{self.runner_id}/failures", json=body))
        except ConflictError as exc:  # requeued or failed meanwhile: nothing of ours to fail
            log.info("failure of job %s attempt %s refused: %s", task.job_id, task.attempt, exc)


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
