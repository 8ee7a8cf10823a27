"""The one function that runs a task, whatever the worker (embedded or remote) and the kind."""

from __future__ import annotations

import logging

from devices.jobs.kinds import get_kind
from devices.jobs.port import Host, JobPort, JobTask
from exporters.errors import ConflictError, LatbenchError

log = logging.getLogger(__name__)


def run_task(port: JobPort, task: JobTask, host: Host) -> None:
    """Claim, fetch, run the kind's task function, post its result; a latbench error fails the
    job with its message, any other error fails it as internal and is raised again (so the worker
    logs it) instead of leaving the job to time out."""
    if not port.claim(task):
        log.info("job %s attempt %s is no longer ours; dropped", task.job_id, task.attempt)
        return
    try:
        artifacts = {role: port.fetch_artifact(task, key) for role, key in task.artifacts().items()}
        result = get_kind(task.kind).run(task, artifacts, host)
    except LatbenchError as exc:
        port.post_failure(task, str(exc))
        return
    except Exception as exc:
        port.post_failure(task, f"internal error: {type(exc).__name__}: {exc}")
        raise
    try:
        port.post_result(task, result)
    except ConflictError as exc:  # requeued or failed meanwhile: the server refused the result
        log.info("result of job %s attempt %s refused: %s", task.job_id, task.attempt, exc)
