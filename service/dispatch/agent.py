"""The process a device host runs (``latbench runner``): registers with the server, heart-beats,
and serves as a Celery worker on its device class's queue, one job at a time. Artifacts come from
the server over HTTP and results go back over HTTP, so the host needs only its runtime
(onnxruntime or coremltools): no torch, no database, no shared disk."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx

from devices.settings import parse_settings
from exporters.errors import AuthError, ConflictError, LatbenchError, RunnerError
from exporters.formats import DeviceClass, ExportFormat
from service import pipeline
from service.dispatch.task import (
    MEASURE_TASK,
    MeasureTask,
    make_celery,
    measure_queue,
    run_worker,
)

log = logging.getLogger(__name__)


class ServerClient:
    """The runner side of the server's /runners API."""

    def __init__(
        self, server: str, timeout: float = 60.0, http: httpx.Client | None = None
    ) -> None:
        self.http = http or httpx.Client(base_url=server.rstrip("/"), timeout=timeout)
        self.runner_id = ""

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code == 401:
            raise AuthError(response.json().get("detail", "runner token refused"))
        if response.status_code == 409:
            raise ConflictError(response.json().get("detail", "conflict"))
        if response.is_error:
            raise RunnerError(f"server answered {response.status_code}: {response.text[:300]}")
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

    def claim(self, task: MeasureTask) -> bool:
        body = {"job_id": task.job_id, "attempt": task.attempt}
        try:
            self._check(self.http.post(f"/runners/{self.runner_id}/claim", json=body))
        except ConflictError:
            return False
        return True

    def fetch_artifact(self, task: MeasureTask, cache: Path) -> Path:
        """Download once per key into ``cache``, checking the server's SHA-256."""
        suffix = ExportFormat(task.format).suffix
        dest = cache / f"{task.artifact_key}{suffix}"
        if dest.exists():
            return dest
        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / f"{task.artifact_key}.part"
        digest = hashlib.sha256()
        url = f"/runners/{self.runner_id}/artifacts/{task.artifact_key}"
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
            raise RunnerError(f"artifact {task.artifact_key} arrived corrupted (sha256 mismatch)")
        if packed:  # a directory artifact (.mlpackage) travels as a tar of its contents
            _extract(partial, dest)
        else:
            partial.replace(dest)
        return dest

    def post_result(self, task: MeasureTask, measurement: dict[str, Any]) -> None:
        body = {"job_id": task.job_id, "attempt": task.attempt, "measurement": measurement}
        self._check(self.http.post(f"/runners/{self.runner_id}/results", json=body))

    def post_failure(self, task: MeasureTask, error: str) -> None:
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


def run_measure_task(
    client: ServerClient, payload: dict[str, Any], *, cache: Path, lock_path: Path
) -> None:
    task = MeasureTask(**payload)
    if not client.claim(task):
        log.info("job %s attempt %s is no longer ours; dropped", task.job_id, task.attempt)
        return
    try:
        path = client.fetch_artifact(task, cache)
        measurement = pipeline.measure(
            path,
            device_class=DeviceClass(task.device_class),
            fmt=ExportFormat(task.format),
            settings=parse_settings(task.settings),
            lock_path=lock_path,
        )
    except LatbenchError as exc:
        client.post_failure(task, str(exc))
        return
    except Exception as exc:  # a runtime crash must fail the job now, not at the job timeout
        client.post_failure(task, f"internal error: {type(exc).__name__}: {exc}")
        raise
    try:
        client.post_result(task, measurement)
    except ConflictError as exc:  # requeued or failed meanwhile: the server refused the result
        log.info("result of job %s attempt %s refused: %s", task.job_id, task.attempt, exc)


def heartbeat_forever(client: ServerClient, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            client.heartbeat()
        except (httpx.HTTPError, LatbenchError) as exc:  # server restarting: keep trying
            log.warning("heartbeat failed: %s", exc)


def run_agent(
    *,
    server: str,
    device_class: DeviceClass,
    registration_token: str | None,
    broker_url: str | None,
    cache: Path,
    lock_path: Path,
) -> None:
    client = ServerClient(server)
    info = client.register(device_class, registration_token)
    if not (broker_url or info["broker_url"]):
        raise RunnerError(
            f"{server} runs the local dispatcher, which measures on its own host "
            "only; start it with LATBENCH_DISPATCHER=celery to attach runners"
        )
    app = make_celery(broker_url or info["broker_url"])

    @app.task(name=MEASURE_TASK)
    def measure(payload: dict[str, Any]) -> None:
        run_measure_task(client, payload, cache=cache, lock_path=lock_path)

    stop = threading.Event()
    threading.Thread(
        target=heartbeat_forever,
        args=(client, info["heartbeat_interval_s"], stop),
        daemon=True,
        name="latbench-heartbeat",
    ).start()
    log.info("runner %s (%s) attached to %s", client.runner_id, device_class.value, server)
    try:
        run_worker(
            app,
            queue=measure_queue(device_class.value, info.get("queue_namespace", "")),
            hostname=f"runner-{client.runner_id[:8]}@%h",
        )
    finally:
        stop.set()
