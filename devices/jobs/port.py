"""What a task is and the small port through which it runs: claim the job, fetch its artifact,
post its result or its failure. The embedded worker implements the port over the database
(``service.dispatch.local``), a remote runner over HTTP (``devices.jobs.http_port``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:
    from devices.jobs.bounded import Limits

MODEL = "model"  # the role of a single-artifact kind's one artifact (profile)


@dataclass(frozen=True)
class JobTask:
    """One job's device step, as a runner needs it; travels as a JSON dict through the broker."""

    job_id: str
    attempt: int
    device_class: str
    format: str
    artifact_key: str  # the job's artifact (a compare job's: the baseline's)
    settings: dict[str, Any]
    kind: str = "profile"
    # role -> key where a kind takes several artifacts (compare: baseline, candidate)
    artifact_keys: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def artifacts(self) -> dict[str, str]:
        """Role -> artifact key of everything the kind's function takes (profile: ``MODEL``)."""
        return dict(self.artifact_keys) or {MODEL: self.artifact_key}


@dataclass(frozen=True)
class Host:
    """What a task may use of the machine it runs on."""

    lock_path: Path
    data_dir: Path | None = None  # the server's data directory, for kinds run on the server
    limits: Limits | None = None  # of each measurement; None: from the environment


class JobPort(Protocol):
    def claim(self, task: JobTask) -> bool:
        """Take the job; False when it is no longer this attempt's (then the task is dropped)."""

    def fetch_artifact(self, task: JobTask, key: str) -> Path:
        """A local path of the task's artifact ``key`` (one of ``task.artifacts()``)."""

    def post_result(self, task: JobTask, result: BaseModel) -> None:
        """Hand the kind's validated result over; ConflictError when it is refused."""

    def post_failure(self, task: JobTask, error: str) -> None:
        """Fail the job with a message for its user."""
