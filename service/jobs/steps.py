"""The server-side steps of a job after its submission: export (and, for a server-side kind, its
run), claim by a runner, complete, fail, requeue. Every state change is a ``transitions`` event,
so a step run twice (a re-delivered message) changes nothing the second time; ``complete``
requires the posting runner to hold the job at that attempt, so a runner that was given up on
cannot finish it. ``fail`` checks the holder only where asked (``held_by``: a remote runner's
own report)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

import service.predict.kind  # noqa: F401  registers the server-side predict kind
from devices.jobs.kinds import get_kind
from devices.jobs.port import MODEL, Host, JobTask
from exporters.artifacts import ArtifactStore, artifact_key
from exporters.errors import ConflictError, LatbenchError, NotFoundError, spec_error_from
from exporters.formats import ExportFormat
from exporters.spec import parse_spec
from service import pipeline
from service.db import artifacts, jobs, runners
from service.db.artifacts import UPLOADED
from service.db.comparisons import record_comparison
from service.db.jobs import JobState
from service.db.results import record_prediction, record_result
from service.db.tables import (
    ComparisonRow,
    JobRow,
    PredictionRow,
    ResultRow,
    RunnerRow,
    SpecRow,
    utcnow,
)
from service.dispatch import isolated
from service.jobs.ports import Dispatcher, Sessions
from service.jobs.transitions import STARTED, Event, beat_export, move, require
from service.settings import Settings

log = logging.getLogger(__name__)
_BEAT_JOIN_S = 10.0  # a beat in flight waits for the database at most its busy timeout

# How each job kind's validated result is stored (one db function per kind), keyed by kind name.
RECORDERS: dict[str, Callable[..., tuple[ResultRow | ComparisonRow | PredictionRow, bool]]] = {
    "profile": record_result,
    "compare": record_comparison,
    "predict": record_prediction,
}


def export_workers(settings: Settings) -> isolated.WorkerProcesses:
    """The worker processes exports run in: each limited to LATBENCH_EXPORT_MEMORY_MB and the
    job timeout, started again when one dies, LATBENCH_MAX_ATTEMPTS times in all."""
    return isolated.WorkerProcesses(
        memory_mb=settings.export_memory_mb,
        timeout_s=settings.job_timeout_s,
        tries=settings.max_attempts,
    )


def export_step(
    sessions: Sessions,
    *,
    job_id: str,
    attempt: int,
    store_root: Path,
    lock_path: Path,
    workers: isolated.WorkerProcesses,
    beat_s: float,
) -> JobTask | None:
    """Export the job's artifacts (one per role: a compare job's baseline and candidate) in one
    of ``workers`` (one already in the store is looked up here); the task for its runner once all
    exist, or None when the job failed or was not this attempt's to export. While it exports,
    the job's heartbeat is written every ``beat_s`` (LATBENCH_HEARTBEAT_INTERVAL_S), so a worker
    that vanishes is noticed by the reaper. WorkerStopped (shutdown) leaves the job exporting,
    for the next start to queue it. A message sent again for an exported job: ``_again``."""
    with sessions() as session:
        job = session.get(JobRow, job_id)
        exported = job is not None and _exported(job, attempt)
        if exported:
            task, keys = task_of(job), job.artifact_keys or {MODEL: job.artifact_key}
        elif not move(session, Event.START_EXPORT, job_id=job_id, attempt=attempt,
                      started_at=(now := utcnow()), beat_at=now):  # fmt: skip
            return None
    if exported:
        return _again(sessions, task, keys, store_root=store_root, lock_path=lock_path)
    with _beating(sessions, job_id=job_id, attempt=attempt, every_s=beat_s):
        with sessions() as session:
            job = jobs.get_job(session, job_id=job_id)
            hashes = job.specs or {MODEL: job.spec_hash}
            rows = {role: session.get(SpecRow, h) for role, h in hashes.items()}
            try:  # an upload is measured as given: its artifact is looked up, never built
                keys = {
                    role: artifacts.upload_key(session, spec_hash=row.hash, fmt=job.format)
                    for role, row in rows.items()
                    if row.family == UPLOADED
                }
            except NotFoundError as exc:
                fail_in(session, job_id=job_id, attempt=attempt, error=str(exc))
                return None
            specs = {role: parse_spec(row.body) for role, row in rows.items() if role not in keys}
        fmt = ExportFormat(job.format)
        export = partial(pipeline.export, store_root=store_root, lock_path=lock_path)
        paths: dict[str, Path] = {}
        for role, spec in specs.items():
            try:
                stored = artifact_key(spec.content_hash(), fmt, spec.precision_for(fmt))
                cached = ArtifactStore(store_root).get(stored) is not None
                report = export(spec, (fmt,)) if cached else workers.run(export, spec, (fmt,))
                with sessions() as session:
                    artifacts.record_export(session, spec_hash=hashes[role], report=report)
                artifact = report.require(fmt)
                keys[role], paths[role] = artifact.key, Path(artifact.path)
            except LatbenchError as exc:
                error = f"{role}: {exc}" if job.specs else str(exc)
                fail(sessions, job_id=job_id, attempt=attempt, error=error)
                return None
        keys = {role: keys[role] for role in hashes}  # the roles' order: the first is the job's key
        several = keys if job.specs else {}
        with sessions() as session:
            if not move(
                session,
                Event.EXPORTED,
                job_id=job_id,
                attempt=attempt,
                artifact_key=next(iter(keys.values())),
                artifact_keys=several or None,
            ):
                return None
            task = task_of(jobs.get_job(session, job_id=job_id))
        if get_kind(job.kind).on_server:
            _run_on_server(sessions, task, paths, Host(lock_path=lock_path, data_dir=store_root))
            return None
        return task


def _again(
    sessions: Sessions, task: JobTask, keys: dict[str, str], *, store_root: Path, lock_path: Path
) -> JobTask | None:
    """An exported job whose message came again (recovery, the reaper's re-send): a runner's
    task is passed on; a kind that runs on the server (predict) runs again, since the worker
    that ran it may have stopped before it stored its result (a repeat stores nothing twice)."""
    if not get_kind(task.kind).on_server:
        return task
    store = ArtifactStore(store_root)
    try:
        paths = {role: store.require(key).path for role, key in keys.items()}
    except NotFoundError as exc:  # removed since (retention): nothing left to run it on
        fail(sessions, job_id=task.job_id, attempt=task.attempt, error=str(exc))
        return None
    _run_on_server(sessions, task, paths, Host(lock_path=lock_path, data_dir=store_root))
    return None


@contextmanager
def _beating(sessions: Sessions, *, job_id: str, attempt: int, every_s: float) -> Iterator[None]:
    """The export's heartbeat (``jobs.beat_at``) every ``every_s`` while the block runs: without
    it an export worker that vanished (SIGKILL, its host gone) left its job exporting until the
    job timeout; with it the reaper requeues the job within LATBENCH_HEARTBEAT_TIMEOUT_S. A beat
    the database refuses is logged and the next one tried; the beats end with the block, or
    once the attempt is no longer exporting (requeued, failed, exported)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            try:
                with sessions() as session:
                    if not beat_export(session, job_id=job_id, attempt=attempt):
                        return
            except SQLAlchemyError as exc:
                log.warning("export heartbeat of job %s not recorded: %s", job_id, exc)

    thread = threading.Thread(target=beat, name="latbench-export-beat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=_BEAT_JOIN_S)


def _exported(job: JobRow, attempt: int) -> bool:
    """Exported at ``attempt`` and waiting for a runner."""
    return job.attempt == attempt and job.state == JobState.QUEUED.value and bool(job.artifact_key)


def task_of(job: JobRow) -> JobTask:
    """The device step of an exported job (a duplicate is harmless: one claim wins)."""
    return JobTask(
        job_id=job.id,
        attempt=job.attempt,
        device_class=job.device_class,
        format=job.format,
        artifact_key=job.artifact_key or "",
        settings=job.settings,
        kind=job.kind,
        artifact_keys=job.artifact_keys or {},
    )


def _run_on_server(sessions: Sessions, task: JobTask, paths: dict[str, Path], host: Host) -> None:
    """Run a server-side kind (predict) on the artifacts just exported and store its result;
    the job is done or failed when this returns, and nothing is sent to a runner."""
    try:
        record = get_kind(task.kind).run(task, paths, host)
    except LatbenchError as exc:
        fail(sessions, job_id=task.job_id, attempt=task.attempt, error=str(exc))
        return
    except Exception as exc:  # failed now rather than left queued for no runner; the worker logs it
        error = f"internal error: {type(exc).__name__}: {exc}"
        fail(sessions, job_id=task.job_id, attempt=task.attempt, error=error)
        raise
    with sessions() as session:
        job = jobs.get_job(session, job_id=task.job_id)
        RECORDERS[task.kind](
            session,
            job=job,
            model=session.get(SpecRow, job.spec_hash).model,
            runner_id=None,
            measurement=record.model_dump(mode="json", exclude_unset=True),
        )


def claim(session: Session, *, job_id: str, attempt: int, runner_id: str) -> None:
    """A runner takes a job of its own device class whose artifact is exported, at ``attempt``;
    ConflictError otherwise (another class's job, one not yet exported, another attempt's).
    The job's move and the runner's link to it commit in one transaction: a crash or a refused
    write between them leaves neither (a claimed job with no runner would wait for its timeout:
    the reaper requeues a silent runner's job through that link)."""
    job = session.get(JobRow, job_id)
    runner = session.get(runners.RunnerRow, runner_id)
    if job is not None and (runner is None or runner.device_class != job.device_class):
        raise ConflictError(
            f"job {job_id!r} is for device class {job.device_class!r}; runner {runner_id!r} "
            f"serves {runner.device_class if runner else 'nothing'!r} and may not claim it"
        )
    require(
        session,
        Event.CLAIM,
        job_id=job_id,
        attempt=attempt,
        runner_id=runner_id,
        measure_started_at=utcnow(),
        commit=False,
    )
    runners.set_current_job(session, runner_id=runner_id, job_id=job_id)


def check_artifact_access(session: Session, *, runner_id: str, artifact_key: str) -> None:
    """A runner fetches only the artifact of the job it holds; NotFoundError otherwise (which
    does not tell it whether the key exists)."""
    runner = session.get(runners.RunnerRow, runner_id)
    job = session.get(JobRow, runner.current_job_id) if runner and runner.current_job_id else None
    held = (
        job is not None
        and job.state == JobState.MEASURING.value
        and job.runner_id == runner_id
        and artifact_key in {job.artifact_key, *(job.artifact_keys or {}).values()}
    )
    if not held:
        raise NotFoundError(
            f"runner {runner_id!r} holds no job with artifact {artifact_key!r}; "
            "claim the job before fetching its artifact"
        )


def complete(
    session: Session,
    *,
    job_id: str,
    attempt: int,
    runner_id: str,
    result: BaseModel | dict[str, Any],
) -> ResultRow | ComparisonRow:
    """Validate ``result`` against the job kind's schema, store the job's one result (a repeat by
    its runner returns the stored one) and mark the job done; ConflictError unless
    ``runner_id`` holds the job at ``attempt``."""
    job = jobs.get_job(session, job_id=job_id)
    if job.attempt != attempt or job.runner_id != runner_id:
        holder = f"runner {job.runner_id!r}" if job.runner_id else "no runner"
        raise ConflictError(
            f"runner {runner_id!r} does not hold job {job_id!r} at attempt {attempt} "
            f"(it is {job.state} at attempt {job.attempt}, held by {holder}); result refused"
        )
    if job.state == JobState.FAILED.value:
        raise ConflictError(f"job {job_id!r} has failed: {job.error}")
    try:
        record = get_kind(job.kind).result.model_validate(result)
    except ValidationError as exc:
        raise spec_error_from(exc.errors(), prefix=("result",)) from None
    model = session.get(SpecRow, job.spec_hash).model
    stored, _ = RECORDERS[job.kind](
        session,
        job=job,
        model=model,
        runner_id=runner_id,
        measurement=record.model_dump(mode="json", exclude_unset=True),
    )
    runners.set_current_job(session, runner_id=runner_id, job_id=None)
    return stored


def fail(sessions: Sessions, **kwargs: Any) -> bool:
    """``fail_in`` in a session of its own (workers; the API passes its request's session)."""
    with sessions() as session:
        return fail_in(session, **kwargs)


def fail_in(
    session: Session,
    *,
    job_id: str,
    attempt: int,
    error: str,
    runner_id: str | None = None,
    held_by: str | None = None,
) -> bool:
    """The one way a job fails: at ``attempt`` from any unfinished state (only while ``held_by``
    holds it, where given: a remote runner reports failures of its own jobs only); True if it
    moved. ``runner_id``'s current job is cleared either way."""
    moved = move(
        session, Event.FAIL, job_id=job_id, attempt=attempt, held_by=held_by, error=error[:4000]
    )
    if runner_id:
        runners.set_current_job(session, runner_id=runner_id, job_id=None)
    return moved


def requeue(
    session: Session, job: JobRow, dispatcher: Dispatcher, *, max_attempts: int, reason: str
) -> bool:
    """Queue ``job``, interrupted while it ran, again under a new attempt (what held the old
    one is now ignored; the artifact is exported again for it, a cache hit, before a runner may
    claim it), unless it has had ``max_attempts`` already: then it fails with ``reason``, so a
    job that crashes what runs it (a worker, a runner, the server) is quarantined instead of
    retried forever. True when requeued. Only a started attempt (``transitions.STARTED``:
    exporting or measuring) is requeued or failed here; a job that never started is left as it
    is (False): nothing of it was interrupted, so it spends no attempt."""
    if JobState(job.state) not in STARTED:
        return False
    attempt = job.attempt  # the conditional UPDATE refreshes the loaded row
    if attempt >= max_attempts:
        fail_in(
            session,
            job_id=job.id,
            attempt=attempt,
            error=f"gave up after {attempt} attempt(s), each interrupted; the last: {reason} "
            "(LATBENCH_MAX_ATTEMPTS)",
        )
        return False
    if move(session, Event.REQUEUE, job_id=job.id, attempt=attempt):
        dispatcher.submit(job.id, attempt + 1)
        return True
    return False


def release_runner_job(
    session: Session, runner: RunnerRow, dispatcher: Dispatcher, *, max_attempts: int, reason: str
) -> None:
    """Unlink ``runner`` from the job it holds and ``requeue`` that job if the runner was still
    measuring it: the runner went silent (the reaper), or registered again under its name (a
    restarted process, which knows nothing of what its old registration held)."""
    job_id = runner.current_job_id
    runners.set_current_job(session, runner_id=runner.id, job_id=None)
    if job_id is None:
        return
    job = jobs.get_job(session, job_id=job_id)
    held = job.state == JobState.MEASURING.value and job.runner_id == runner.id
    if held and requeue(session, job, dispatcher, max_attempts=max_attempts, reason=reason):
        log.warning("runner %s: %s; job %s requeued", runner.id, reason, job.id)
