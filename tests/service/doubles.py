"""Honest test doubles, for tests only (never offered as a device or a dispatcher): they stand in
for the queue and for the server, and drive the real job code (the job service, ``run_task``, the
profile kind) instead of monkeypatching it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from devices.jobs.port import JobTask
from exporters.formats import DeviceClass

OCTET = {"content-type": "application/octet-stream"}  # the one type POST /artifacts takes


class RecordingDispatcher:
    """A dispatcher that queues nothing: it records what the job service submitted and serves
    the device classes it is given (default: all), as a Celery backend would accept them."""

    def __init__(self, serves: Iterable[DeviceClass] | None = None) -> None:
        self.classes = None if serves is None else {d.value for d in serves}
        self.submitted: list[tuple[str, int]] = []
        self.dispatched: list[JobTask] = []  # jobs created exported, sent to a device queue

    @classmethod
    def this_host(cls) -> RecordingDispatcher:
        """Serves this host's CPU class only, as the embedded dispatcher does."""
        return cls([DeviceClass.of_this_cpu()])

    def submit(self, job_id: str, attempt: int) -> None:
        self.submitted.append((job_id, attempt))

    def dispatch(self, task: JobTask) -> None:
        self.dispatched.append(task)

    def serves(self, device_class: str) -> bool:
        return self.classes is None or device_class in self.classes

    def failure(self) -> str | None:
        return None

    def start(self) -> None:
        """Nothing runs: jobs stay where the job service put them."""

    def stop(self) -> None:
        """Nothing to stop."""


class FilePort:
    """A job port without a server: every claim succeeds, the artifact is a file given up front,
    and what the task posts is kept for the test to read."""

    def __init__(self, artifact: Path, *, claims: bool = True) -> None:
        self.artifact = artifact
        self.claims = claims
        self.results: list[BaseModel] = []
        self.failures: list[str] = []

    def claim(self, task: JobTask) -> bool:
        return self.claims

    def fetch_artifact(self, task: JobTask, key: str) -> Path:
        return self.artifact

    def post_result(self, task: JobTask, result: BaseModel) -> None:
        self.results.append(result)

    def post_failure(self, task: JobTask, error: str) -> None:
        self.failures.append(error)
