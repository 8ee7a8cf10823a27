"""The job service: submission (plan, quota, spec, coalescing, dispatch) and every state change of
a job (export, claim, complete, fail, requeue). Routes, dispatchers and the reaper call these
functions and never move a job themselves.

Each change is a conditional transition keyed by the attempt number, so a step run twice (a
re-delivered message) changes nothing the second time; ``complete`` also requires the posting
runner to hold the job at that attempt, so a runner that was given up on cannot finish it.
``fail`` checks the holder only where asked (``held_by``: a remote runner's own report)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from devices.jobs.kinds import get_kind
from devices.jobs.port import MODEL, Host, JobTask
from devices.settings import MeasureSettings
from exporters.errors import ConflictError, LatbenchError, QuotaError, SpecError, spec_error_from
from exporters.formats import DeviceClass, ExportFormat
from exporters.spec import parse_spec
from service import pipeline
from service.db import artifacts, jobs, runners
from service.db.comparisons import record_comparison
from service.db.jobs import JobState
from service.db.results import record_prediction, record_result
from service.db.tables import ComparisonRow, JobRow, PredictionRow, ResultRow, SpecRow, utcnow
from service.dispatch import Dispatcher
from service.settings import Settings

Sessions = Callable[[], Session]

# How each job kind's validated result is stored (one db function per kind), keyed by kind name.
RECORDERS: dict[str, Callable[..., tuple[ResultRow | ComparisonRow | PredictionRow, bool]]] = {
    "profile": record_result,
    "compare": record_comparison,
    "predict": record_prediction,
}


@dataclass(frozen=True)
class Submitted:
    """One job a request maps to; ``cached`` when it is an earlier job's finished result."""

    job: JobRow
    cached: bool


@dataclass(frozen=True)
class Submission:
    plan: pipeline.Plan
    jobs: list[Submitted]


def submit_profile(
    session: Session,
    *,
    settings: Settings,
    dispatcher: Dispatcher,
    user: str,
    model: str | dict[str, Any],
    devices: list[DeviceClass],
    formats: list[ExportFormat] | None,
    measure: MeasureSettings,
    force: bool,
) -> Submission:
    """One job per device: a cached result or an identical unfinished job is reused (unless
    ``force``), new jobs are checked against the user's quota as a whole, then dispatched."""
    plan = pipeline.plan(model, devices, formats, budget=settings.work_budget)
    submitted = _submit(
        session,
        settings=settings,
        dispatcher=dispatcher,
        user=user,
        kind="profile",
        plans={MODEL: plan},
        request_key=lambda keys: keys[MODEL],
        measure=measure,
        force=force,
    )
    return Submission(plan, submitted)


@dataclass(frozen=True)
class CompareSubmission:
    baseline: pipeline.Plan
    candidate: pipeline.Plan
    jobs: list[Submitted]


def submit_compare(
    session: Session,
    *,
    settings: Settings,
    dispatcher: Dispatcher,
    user: str,
    baseline: str | dict[str, Any],
    candidate: str | dict[str, Any],
    devices: list[DeviceClass],
    measure: MeasureSettings,
    force: bool,
) -> CompareSubmission:
    """One compare job per device (both sides in the class's first format), reused and
    coalesced by a key over both sides, the device and the settings, as ``submit_profile``."""
    plans = {
        "baseline": _plan_side(baseline, devices, "baseline", settings),
        "candidate": _plan_side(candidate, devices, "candidate", settings),
    }
    submitted = _submit(
        session,
        settings=settings,
        dispatcher=dispatcher,
        user=user,
        kind="compare",
        plans=plans,
        request_key=lambda keys: pipeline.compare_key(**keys),
        measure=measure,
        force=force,
    )
    return CompareSubmission(plans["baseline"], plans["candidate"], submitted)


def measurable(
    session: Session, *, settings: Settings, dispatcher: Dispatcher, device: DeviceClass
) -> bool:
    """Whether a measurement of ``device`` would run: the embedded runner serves the class, or
    a runner of the class has beaten its heartbeat within the timeout (a queued job for a class
    with no such runner waits for one that may never come)."""
    if settings.dispatcher == "local" and dispatcher.serves(device.value):
        return True
    cutoff = utcnow() - timedelta(seconds=settings.heartbeat_timeout_s)
    return device.value in runners.online_classes(session, cutoff=cutoff)


def runs_server_kinds(settings: Settings) -> bool:
    """Whether a job's export step runs at all here, and with it a server-side kind (predict):
    in the Celery export worker, or in the embedded worker, which runs only while its runner
    is on."""
    return settings.dispatcher == "celery" or settings.local_runner


def submit_predict(
    session: Session,
    *,
    settings: Settings,
    dispatcher: Dispatcher,
    user: str,
    model: str | dict[str, Any],
    devices: list[DeviceClass],
    formats: list[ExportFormat] | None,
    force: bool,
) -> Submission:
    """One ``predict`` job per device: the spec is exported to ONNX and predicted on the server
    (``devices.jobs.predict``). Its request key is its own (``pipeline.predict_key``), so a
    prediction never answers a measurement request, nor the reverse; a done one is reused unless
    ``force``, an unfinished one joined. The request is checked as a measurement would be (a
    format the class cannot run is refused), whatever format the predictor reads."""
    plan = pipeline.plan(model, devices, formats, budget=settings.work_budget)
    keys = [pipeline.predict_key(spec_hash=plan.spec_hash, device_class=d) for d in devices]
    done = [None if force else jobs.measured_job(session, request_key=key) for key in keys]
    _check_quota(session, settings, user, [k for k, d in zip(keys, done, strict=True) if not d])
    _store_spec(session, plan)
    submitted = []
    for device, key, job in zip(devices, keys, done, strict=True):
        created = False
        if job is None:
            job, created = jobs.create_or_coalesce(
                session,
                spec_hash=plan.spec_hash,
                device_class=device.value,
                fmt=ExportFormat.ONNX.value,  # the graph the predictor reads
                settings={"spec": plan.spec.model_dump(mode="json"), "family": plan.family},
                request_key=key,
                user=user,
                reuse_result=not force,
                kind="predict",
            )
            if created:
                dispatcher.submit(job.id, job.attempt)
        submitted.append(Submitted(job, not created and job.state == JobState.DONE.value))
    return Submission(plan, submitted)


def _plan_side(
    model: str | dict[str, Any], devices: list[DeviceClass], role: str, settings: Settings
) -> pipeline.Plan:
    """The plan of one side of a comparison; its errors name the side (``candidate.model``)."""
    try:
        return pipeline.plan(model, devices, None, budget=settings.work_budget)
    except SpecError as exc:
        detail = str(exc).removeprefix(f"{exc.field}: ") if exc.field else str(exc)
        raise SpecError(detail, field=f"{role}.{exc.field}" if exc.field else role) from exc


def _submit(
    session: Session,
    *,
    settings: Settings,
    dispatcher: Dispatcher,
    user: str,
    kind: str,
    plans: dict[str, pipeline.Plan],
    request_key: Callable[[dict[str, str]], str],
    measure: MeasureSettings,
    force: bool,
) -> list[Submitted]:
    """One job of ``kind`` per device over the models of ``plans`` (role -> plan, targets in the
    same device order); ``request_key`` makes the job's key from each role's request key."""
    first = next(iter(plans.values()))
    for target in first.targets:
        _check_served(settings, dispatcher, target.device_class)
    keyed = []
    for index, target in enumerate(first.targets):
        keys = {
            role: pipeline.request_key(
                spec_hash=plan.spec_hash, target=plan.targets[index], settings=measure
            )
            for role, plan in plans.items()
        }
        key = request_key(keys)
        keyed.append((target, key, None if force else jobs.measured_job(session, request_key=key)))
    _check_quota(session, settings, user, [key for _, key, done in keyed if done is None])
    for plan in plans.values():
        _store_spec(session, plan)
    specs = {role: plan.spec_hash for role, plan in plans.items()}
    submitted = []
    for target, key, job in keyed:
        created = False
        if job is None:
            job, created = jobs.create_or_coalesce(
                session,
                spec_hash=first.spec_hash,
                device_class=target.device_class.value,
                fmt=target.format.value,
                settings=measure.model_dump(mode="json"),
                request_key=key,
                user=user,
                reuse_result=not force,
                kind=kind,
                specs=specs if len(specs) > 1 else None,
            )
            if created:
                dispatcher.submit(job.id, job.attempt)
        submitted.append(Submitted(job, not created and job.state == JobState.DONE.value))
    return submitted


def _store_spec(session: Session, plan: pipeline.Plan) -> None:
    jobs.upsert_spec(
        session,
        spec_hash=plan.spec_hash,
        model=plan.spec.model,
        family=plan.family,
        body=plan.spec.model_dump(mode="json"),
    )


def _check_served(settings: Settings, dispatcher: Dispatcher, device: DeviceClass) -> None:
    if dispatcher.serves(device.value):
        return
    scope = (
        "it measures on this host only"
        if settings.local_runner
        else "its embedded runner is off, LATBENCH_LOCAL_RUNNER=false"
    )
    raise SpecError(
        f"{device.value!r} cannot be measured by the {settings.dispatcher} dispatcher of this "
        f"server ({scope}; use LATBENCH_DISPATCHER=celery to attach runners)",
        field="devices",
    )


def _check_quota(session: Session, settings: Settings, user: str, keys: list[str]) -> None:
    """For the whole request before any job is created, so a 429 never leaves part of it queued;
    a key that joins an unfinished job adds nothing."""
    new = sum(1 for key in keys if jobs.active_job(session, request_key=key) is None)
    active = jobs.count_active(session, user=user) if new else 0
    if new and active + new > settings.max_queued_per_user:
        raise QuotaError(
            f"{new} new job(s) would exceed the {settings.max_queued_per_user} you may have "
            f"queued ({active} already); wait for some to finish (LATBENCH_MAX_QUEUED_PER_USER)"
        )


def export_step(
    sessions: Sessions, *, job_id: str, attempt: int, store_root: Path, lock_path: Path
) -> JobTask | None:
    """Export the job's artifacts (one per role: a compare job's baseline and candidate); the task
    for its runner once all exist, or None when the job failed or was not this attempt's."""
    with sessions() as session:
        if not jobs.transition(
            session,
            job_id=job_id,
            attempt=attempt,
            from_states=[JobState.QUEUED],
            to=JobState.EXPORTING,
            started_at=utcnow(),
        ):
            return None
        job = jobs.get_job(session, job_id=job_id)
        hashes = job.specs or {MODEL: job.spec_hash}
        specs = {role: parse_spec(session.get(SpecRow, h).body) for role, h in hashes.items()}
    fmt = ExportFormat(job.format)
    keys: dict[str, str] = {}
    paths: dict[str, Path] = {}
    for role, spec in specs.items():
        try:
            report = pipeline.export(spec, (fmt,), store_root=store_root, lock_path=lock_path)
            with sessions() as session:
                artifacts.record_export(session, spec_hash=hashes[role], report=report)
            artifact = report.require(fmt)
            keys[role], paths[role] = artifact.key, Path(artifact.path)
        except LatbenchError as exc:
            error = f"{role}: {exc}" if job.specs else str(exc)
            fail(sessions, job_id=job_id, attempt=attempt, error=error)
            return None
    several = keys if job.specs else {}
    key = next(iter(keys.values()))
    kind = get_kind(job.kind)
    with sessions() as session:
        if not jobs.transition(
            session,
            job_id=job_id,
            attempt=attempt,
            from_states=[JobState.EXPORTING],
            to=JobState.QUEUED,
            artifact_key=key,
            artifact_keys=several or None,
        ):
            return None
    task = JobTask(
        job_id=job_id,
        attempt=attempt,
        device_class=job.device_class,
        format=job.format,
        artifact_key=key,
        settings=job.settings,
        kind=job.kind,
        artifact_keys=several,
    )
    if kind.on_server:
        _run_on_server(sessions, task, paths, Host(lock_path=lock_path, data_dir=store_root))
        return None
    return task


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
    """A runner takes the job for measurement; ConflictError when it is no longer this attempt's."""
    if not jobs.transition(
        session,
        job_id=job_id,
        attempt=attempt,
        from_states=[JobState.QUEUED],
        to=JobState.MEASURING,
        runner_id=runner_id,
        measure_started_at=utcnow(),
    ):
        raise ConflictError(f"job {job_id!r} attempt {attempt} is not waiting for a runner")
    runners.set_current_job(session, runner_id=runner_id, job_id=job_id)


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
    moved = jobs.transition(
        session,
        job_id=job_id,
        attempt=attempt,
        from_states=[s for s in JobState if s.active],
        to=JobState.FAILED,
        error=error[:4000],
        held_by=held_by,
    )
    if runner_id:
        runners.set_current_job(session, runner_id=runner_id, job_id=None)
    return moved


def requeue(session: Session, job: JobRow, dispatcher: Dispatcher) -> bool:
    """Queue ``job`` again under a new attempt (what held the old one is now ignored)."""
    attempt = job.attempt  # the conditional UPDATE refreshes the loaded row
    if jobs.requeue(session, job_id=job.id, attempt=attempt):
        dispatcher.submit(job.id, attempt + 1)
        return True
    return False
