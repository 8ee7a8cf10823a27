"""The runner side: register (runner id + token), heartbeat, claim a job of its class that is
exported, fetch that job's artifact, post its result or failure. Everything but registration needs
the runner's own token, and a runner acts only on the job it holds."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from fastapi import APIRouter, Request, status
from fastapi.responses import FileResponse, Response

from exporters.artifacts import ArtifactStore
from exporters.errors import AuthError, ConflictError
from service.api.deps import DispatcherDep, RunnerDep, SessionDep, SettingsDep, bearer
from service.api.schemas import Claim, FailurePost, ResultPost, RunnerCreate, RunnerRegistered
from service.auth import same_secret
from service.db import runners
from service.jobs import steps

router = APIRouter(prefix="/runners", tags=["runners"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RunnerRegistered)
def register(
    body: RunnerCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
) -> RunnerRegistered:
    """Attach a runner of a device class; its id and token for the calls below. A provisioned
    credential (``latbench runners add``) registers only its device classes; the shared
    LATBENCH_RUNNER_TOKEN, where set, any; on loopback with neither, anyone may. A runner that
    names itself and registers again under that name and credential (a restart) takes its row
    back with a new token, and whatever its old registration held is requeued; otherwise a row
    is added, within LATBENCH_MAX_RUNNERS_PER_CREDENTIAL live rows per credential (429 past it),
    so neither restarts nor a leaked token pile rows up; concurrent registrations of one
    credential take turns."""
    given = bearer(request) or ""
    credential = runners.credential_by_token(session, given) if given else None
    if credential is not None and body.device_class.value not in credential.device_classes:
        raise AuthError(
            f"runner credential {credential.name!r} registers "
            f"{', '.join(credential.device_classes)} runners, not {body.device_class.value}"
        )
    shared = settings.runner_token
    if credential is None and shared and not same_secret(given, shared):
        raise AuthError(
            "runner registration needs a runner credential (latbench runners add) or "
            "LATBENCH_RUNNER_TOKEN as bearer token"
        )
    scope = credential.name if credential else None
    runners.lock_registrations(session, credential=scope)  # until register_runner commits
    again = runners.live_named(session, credential=scope, name=body.name) if body.name else None
    if again is None:
        runners.require_room(session, credential=scope, cap=settings.max_runners_per_credential)
    else:
        steps.release_runner_job(
            session,
            again,
            dispatcher,
            max_attempts=settings.max_attempts,
            reason=f"runner {again.id} registered again as {body.name!r} while measuring it",
        )
    row, token = runners.register_runner(
        session,
        device_class=body.device_class.value,
        description=body.description,
        runner_id=again.id if again else None,
        credential=scope,
        name=body.name,
    )
    broker = settings.broker_url if settings.dispatcher == "celery" else None
    return RunnerRegistered(
        id=row.id,
        token=token,
        broker_url=broker,
        queue_namespace=settings.queue_namespace,
        heartbeat_interval_s=settings.heartbeat_interval_s,
    )


@router.post("/{runner_id}/heartbeat", status_code=status.HTTP_204_NO_CONTENT)
def heartbeat(runner: RunnerDep, session: SessionDep) -> None:
    """Tell the server this runner is alive (silent runners' jobs are requeued)."""
    runners.heartbeat(session, runner=runner)


@router.post("/{runner_id}/claim", status_code=status.HTTP_204_NO_CONTENT)
def claim(body: Claim, runner: RunnerDep, session: SessionDep) -> None:
    """Take a queued job at its attempt (409 when it is no longer waiting for a runner)."""
    steps.claim(session, job_id=body.job_id, attempt=body.attempt, runner_id=runner.id)


@router.get("/{runner_id}/artifacts/{key}")
def fetch_artifact(
    key: str, runner: RunnerDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """The artifact of the job this runner holds (404 for any other key): the file itself, or a
    tar of a directory artifact (.mlpackage); SHA-256 in a header."""
    steps.check_artifact_access(session, runner_id=runner.id, artifact_key=key)
    path = ArtifactStore(settings.data_dir).require(key).path
    if path.is_dir():
        data = _tar(path)
        return Response(
            data,
            media_type="application/x-tar",
            headers={
                "x-artifact-sha256": hashlib.sha256(data).hexdigest(),
                "x-artifact-packing": "tar",
            },
        )
    return FileResponse(
        path, media_type="application/octet-stream", headers={"x-artifact-sha256": _sha256(path)}
    )


@router.post("/{runner_id}/results", status_code=status.HTTP_201_CREATED)
def post_result(body: ResultPost, runner: RunnerDep, session: SessionDep) -> dict[str, object]:
    """Store the held job's result, validated against its kind's schema; the job is done."""
    result = steps.complete(
        session,
        job_id=body.job_id,
        attempt=body.attempt,
        runner_id=runner.id,
        result=body.result,
    )
    return {"result_id": result.id, "job_id": result.job_id}


@router.post("/{runner_id}/failures", status_code=status.HTTP_204_NO_CONTENT)
def post_failure(body: FailurePost, runner: RunnerDep, session: SessionDep) -> None:
    """Fail the held job with the runner's message (409 unless this runner holds it)."""
    moved = steps.fail_in(
        session,
        job_id=body.job_id,
        attempt=body.attempt,
        error=f"runner {runner.id}: {body.error}",
        runner_id=runner.id,
        held_by=runner.id,
    )
    if not moved:
        raise ConflictError(
            f"runner {runner.id} does not hold job {body.job_id} at attempt {body.attempt}; "
            "failure not recorded"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tar(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(directory, arcname=".")
    return buffer.getvalue()
