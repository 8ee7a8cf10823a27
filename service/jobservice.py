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
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from devices.jobs.kinds import get_kind
from devices.jobs.port import MODEL, Host, JobTask
from devices.settings import MeasureSettings
from exporters.artifacts import ArtifactStore, artifact_key
from exporters.errors import (
    ConflictError,
    LatbenchError,
    NotFoundError,
    QuotaError,
    SpecError,
    spec_error_from,
)
from exporters.formats import DeviceClass, ExportFormat, Precision
from exporters.spec import parse_spec
from service import pipeline
from service.db import artifacts, jobs, owners, runners
from service.db.artifacts import UPLOADED
from service.db.comparisons import record_comparison
from service.db.jobs import JobState
from service.db.results import record_prediction, record_result
from service.db.tables import (
    ArtifactRow,
    ComparisonRow,
    JobRow,
    PredictionRow,
    ResultRow,
    SpecRow,
    utcnow,
)
from service.dispatch import Dispatcher, isolated
from service.settings import Settings

Sessions = Callable[[], Session]
Side = pipeline.Plan | pipeline.Upload  # a model to build, or an uploaded artifact

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
    plan: Side
    jobs: list[Submitted]


def submit_profile(
    session: Session,
    *,
    settings: Settings,
    dispatcher: Dispatcher,
    user: str,
    model: str | dict[str, Any] | None,
    devices: list[DeviceClass],
    formats: list[ExportFormat] | None,
    measure: MeasureSettings,
    force: bool,
    artifact: str | None = None,
    reader: Session | None = None,
) -> Submission:
    """One job per device: a cached result or an identical unfinished job is reused (unless
    ``force``), new jobs are checked against the user's quota as a whole, then dispatched.
    ``artifact`` (an upload's id) instead of ``model``: measured as uploaded. With a ``reader``
    (a read-only session) what is only looked up is looked up there, so a request answered
    wholly from the cache never takes the write lock that ``session`` takes at its first query."""
    plan = (
        upload_side(reader or session, artifact, devices, field="artifact", user=user)
        if artifact is not None
        else pipeline.plan(model, devices, formats, budget=settings.work_budget)
    )
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
        reader=reader,
    )
    return Submission(plan, submitted)


@dataclass(frozen=True)
class CompareSubmission:
    baseline: Side
    candidate: Side
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
    coalesced by a key over both sides, the device and the settings, as ``submit_profile``.
    A side ``{"artifact": id}`` is an upload, measured as given."""
    plans = {
        role: upload_side(session, model["artifact"], devices, field=f"{role}.artifact", user=user)
        if isinstance(model, dict) and set(model) == {"artifact"}
        else _plan_side(model, devices, role, settings)
        for role, model in (("baseline", baseline), ("candidate", candidate))
    }
    formats = {role: tuple(t.format for t in plan.targets) for role, plan in plans.items()}
    if formats["baseline"] != formats["candidate"]:
        raise SpecError(
            f"the sides would be measured in different formats ({formats}); compare an upload "
            "with an upload or a model of the same format",
            field="candidate",
        )
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
    session: Session,
    *,
    settings: Settings,
    dispatcher: Dispatcher,
    devices: list[DeviceClass],
    registered: list[runners.RunnerRow] | None = None,
) -> set[DeviceClass]:
    """Those of ``devices`` a measurement would run for now: the embedded runner serves the
    class, or a runner of the class has beaten its heartbeat within the timeout (a queued job for
    a class with no such runner waits for one that may never come). One query for all, none when
    the caller passes the ``registered`` runners it loaded."""
    served = {d for d in devices if settings.dispatcher == "local" and dispatcher.serves(d.value)}
    if len(served) == len(set(devices)):
        return served
    cutoff = utcnow() - timedelta(seconds=settings.heartbeat_timeout_s)
    if registered is None:
        registered = runners.list_runners(session)
    online = runners.online_classes(registered, cutoff=cutoff)
    return served | {d for d in devices if d.value in online}


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


def upload_side(
    session: Session, key: str, devices: list[DeviceClass], *, field: str, user: str
) -> pipeline.Upload:
    """The uploaded artifact ``key`` on ``devices``: it must exist (NotFoundError naming
    ``field``) and every device class must run its format (it is measured as given, never
    converted: SpecError naming ``devices`` otherwise)."""
    row = owners.uploaded_for(session, key=key, field=field, user=user)
    fmt = ExportFormat(row.format)
    for device in devices:
        if fmt not in device.formats:
            runs = ", ".join(f.value for f in device.formats)
            raise SpecError(
                f"device {device.value!r} runs {runs}; {field} {key!r} is {fmt.value}",
                field="devices",
            )
    model = session.get(SpecRow, row.spec_hash).model
    targets = tuple(pipeline.Target(d, fmt, row.precision) for d in devices)
    return pipeline.Upload(key=key, spec_hash=row.spec_hash, model=model, targets=targets)


def _ready_keys(
    session: Session, plans: dict[str, Side], index: int, store: ArtifactStore
) -> dict[str, str] | None:
    """Role -> artifact key when every role's artifact for target ``index`` is ready (an
    upload, or an earlier export of the same spec, format and precision that this server
    recorded as passing its checks and still has in its store), so the job skips the export
    queue; None when any must go through the export step."""
    keys = {}
    for role, plan in plans.items():
        target = plan.targets[index]
        if isinstance(plan, pipeline.Upload):
            keys[role] = plan.key
            continue
        key = artifact_key(plan.spec_hash, target.format, Precision(target.precision))
        row = session.get(ArtifactRow, key)
        if row is None or not row.ok or store.get(key) is None:
            return None
        keys[role] = key
    return keys


def _submit(
    session: Session,
    *,
    settings: Settings,
    dispatcher: Dispatcher,
    user: str,
    kind: str,
    plans: dict[str, Side],
    request_key: Callable[[dict[str, str]], str],
    measure: MeasureSettings,
    force: bool,
    reader: Session | None = None,
) -> list[Submitted]:
    """One job of ``kind`` per device over the models of ``plans`` (role -> plan, targets in the
    same device order); ``request_key`` makes the job's key from each role's request key. The
    cached results are looked up through ``reader`` when given (see ``submit_profile``)."""
    settings.refuse_unfinishable(measure)
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
        done = None if force else jobs.measured_job(reader or session, request_key=key)
        keyed.append((target, key, done))
    if all(done is not None for _, _, done in keyed):
        return [Submitted(done, True) for _, _, done in keyed]  # nothing to write
    _check_quota(session, settings, user, [key for _, key, done in keyed if done is None])
    for plan in plans.values():
        if isinstance(plan, pipeline.Upload):
            continue  # its spec row was made by the upload
        _store_spec(session, plan)
    specs = {role: plan.spec_hash for role, plan in plans.items()}
    store = ArtifactStore(settings.data_dir)
    submitted = []
    for index, (target, key, job) in enumerate(keyed):
        created = False
        if job is None:
            ready = _ready_keys(session, plans, index, store)
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
                artifact_keys=ready,
            )
            if created and ready:
                dispatcher.dispatch(_task_of(job))
            elif created:
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
) -> JobTask | None:
    """Export the job's artifacts (one per role: a compare job's baseline and candidate) in one
    of ``workers`` (one already in the store is looked up here); the task for its runner once all
    exist, or None when the job failed or was not this attempt's to export. WorkerStopped
    (shutdown) leaves the job exporting, for the next start to queue it."""
    with sessions() as session:
        job = session.get(JobRow, job_id)
        if job is not None and _exported(job, attempt):  # a message sent again: pass it on
            return None if get_kind(job.kind).on_server else _task_of(job)
        if not jobs.transition(
            session,
            job_id=job_id,
            attempt=attempt,
            from_states=[JobState.QUEUED],
            to=JobState.EXPORTING,
            where=[JobRow.artifact_key.is_(None)],
            started_at=utcnow(),
        ):
            return None
        job = jobs.get_job(session, job_id=job_id)
        session.refresh(job)
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
        task = _task_of(jobs.get_job(session, job_id=job_id))
    if kind.on_server:
        _run_on_server(sessions, task, paths, Host(lock_path=lock_path, data_dir=store_root))
        return None
    return task


def _exported(job: JobRow, attempt: int) -> bool:
    """Exported at ``attempt`` and waiting for a runner."""
    return job.attempt == attempt and job.state == JobState.QUEUED.value and bool(job.artifact_key)


def _task_of(job: JobRow) -> JobTask:
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
    ConflictError otherwise (another class's job, one not yet exported, another attempt's)."""
    job = session.get(JobRow, job_id)
    runner = session.get(runners.RunnerRow, runner_id)
    if job is not None and (runner is None or runner.device_class != job.device_class):
        raise ConflictError(
            f"job {job_id!r} is for device class {job.device_class!r}; runner {runner_id!r} "
            f"serves {runner.device_class if runner else 'nothing'!r} and may not claim it"
        )
    if not jobs.transition(
        session,
        job_id=job_id,
        attempt=attempt,
        from_states=[JobState.QUEUED],
        to=JobState.MEASURING,
        where=[JobRow.artifact_key.is_not(None)],
        runner_id=runner_id,
        measure_started_at=utcnow(),
    ):
        raise ConflictError(
            f"job {job_id!r} attempt {attempt} is not waiting for a runner "
            "(exported and queued at that attempt)"
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


def requeue(
    session: Session, job: JobRow, dispatcher: Dispatcher, *, max_attempts: int, reason: str
) -> bool:
    """Queue ``job`` again under a new attempt (what held the old one is now ignored), unless it
    has had ``max_attempts`` already: then it fails with ``reason``, so a job that crashes what
    runs it (a worker, a runner, the server) is quarantined instead of retried forever. True
    when requeued."""
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
    if jobs.requeue(session, job_id=job.id, attempt=attempt):
        dispatcher.submit(job.id, attempt + 1)
        return True
    return False
