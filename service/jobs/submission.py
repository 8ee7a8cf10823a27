"""A request becomes jobs: plan, quota, spec rows, coalescing, dispatch. One job per device;
a done job answering the same request key is reused (unless ``force``), an unfinished one with
the same key joined, and the new ones are checked against the user's quota as a whole before
any is created."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from devices.jobs.kinds import get_kind
from devices.jobs.port import MODEL
from devices.settings import MeasureSettings
from exporters.artifacts import ArtifactStore, artifact_key
from exporters.errors import QuotaError, SpecError
from exporters.formats import DeviceClass, ExportFormat, Precision
from service import pipeline
from service.db import jobs, owners, runners
from service.db.jobs import JobState
from service.db.tables import ArtifactRow, JobRow, SpecRow, utcnow
from service.jobs.ports import Dispatcher
from service.jobs.steps import task_of
from service.settings import Settings

Side = pipeline.Plan | pipeline.Upload  # a model to build, or an uploaded artifact


@dataclass(frozen=True)
class Submitted:
    """One job a request maps to; ``cached`` when it is an earlier job's finished result."""

    job: JobRow
    cached: bool


@dataclass(frozen=True)
class Submission:
    plan: Side
    jobs: list[Submitted]


@dataclass(frozen=True)
class CompareSubmission:
    baseline: Side
    candidate: Side
    jobs: list[Submitted]


@dataclass(frozen=True)
class Wanted:
    """One job a request asks for before it exists: its device, format and request key."""

    device: DeviceClass
    fmt: str
    key: str


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
    """One profile job per device. ``artifact`` (an upload's id) instead of ``model``: measured
    as uploaded. With a ``reader`` (a read-only session) what is only looked up is looked up
    there, so a request answered wholly from the cache never takes the write lock that
    ``session`` takes at its first query."""
    plan = (
        upload_side(reader or session, artifact, devices, field="artifact", user=user)
        if artifact is not None
        else pipeline.plan(model, devices, formats, budget=settings.work_budget)
    )
    plans = {MODEL: plan}
    submitted = _submit(
        session,
        settings=settings,
        dispatcher=dispatcher,
        user=user,
        kind="profile",
        plans=plans,
        wanted=_measured(settings, dispatcher, plans, measure, lambda keys: keys[MODEL]),
        job_settings=measure.model_dump(mode="json"),
        force=force,
        reader=reader,
    )
    return Submission(plan, submitted)


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
        wanted=_measured(
            settings, dispatcher, plans, measure, lambda keys: pipeline.compare_key(**keys)
        ),
        job_settings=measure.model_dump(mode="json"),
        force=force,
    )
    return CompareSubmission(plans["baseline"], plans["candidate"], submitted)


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
    allow_out_of_domain: bool = False,
) -> Submission:
    """One ``predict`` job per device: the spec is exported to ONNX and predicted on the server
    (``service.predict.kind``). Its request key is its own (``pipeline.predict_key``, the
    out-of-domain flag included), so a prediction never answers a measurement request, nor the
    reverse, nor one made with the flag a request without it; a done one is reused unless
    ``force``, an unfinished one joined. The request is checked as a measurement would be (a
    format the class cannot run is refused), whatever format the predictor reads."""
    plan = pipeline.plan(model, devices, formats, budget=settings.work_budget)
    onnx = ExportFormat.ONNX.value  # the graph the predictor reads
    wanted = [
        Wanted(
            d,
            onnx,
            pipeline.predict_key(
                spec_hash=plan.spec_hash,
                device_class=d,
                allow_out_of_domain=allow_out_of_domain,
            ),
        )
        for d in devices
    ]
    submitted = _submit(
        session,
        settings=settings,
        dispatcher=dispatcher,
        user=user,
        kind="predict",
        plans={MODEL: plan},
        wanted=wanted,
        job_settings={
            "spec": plan.spec.model_dump(mode="json"),
            "family": plan.family,
            "allow_out_of_domain": allow_out_of_domain,
        },
        force=force,
    )
    return Submission(plan, submitted)


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


def _plan_side(
    model: str | dict[str, Any], devices: list[DeviceClass], role: str, settings: Settings
) -> pipeline.Plan:
    """The plan of one side of a comparison; its errors name the side (``candidate.model``)."""
    try:
        return pipeline.plan(model, devices, None, budget=settings.work_budget)
    except SpecError as exc:
        detail = str(exc).removeprefix(f"{exc.field}: ") if exc.field else str(exc)
        raise SpecError(detail, field=f"{role}.{exc.field}" if exc.field else role) from exc


def _measured(
    settings: Settings,
    dispatcher: Dispatcher,
    plans: dict[str, Side],
    measure: MeasureSettings,
    request_key: Callable[[dict[str, str]], str],
) -> list[Wanted]:
    """The measurement jobs over ``plans`` (role -> plan, targets in the same device order), one
    per target of the first; ``request_key`` makes a job's key from each role's request key.
    Refused (SpecError naming ``devices``) when a device cannot be measured here, or naming the
    setting when the measurement could never finish within the job timeout."""
    settings.refuse_unfinishable(measure)
    first = next(iter(plans.values()))
    for target in first.targets:
        _check_served(settings, dispatcher, target.device_class)
    wanted = []
    for index, target in enumerate(first.targets):
        keys = {
            role: pipeline.request_key(
                spec_hash=plan.spec_hash, target=plan.targets[index], settings=measure
            )
            for role, plan in plans.items()
        }
        wanted.append(Wanted(target.device_class, target.format.value, request_key(keys)))
    return wanted


def _submit(
    session: Session,
    *,
    settings: Settings,
    dispatcher: Dispatcher,
    user: str,
    kind: str,
    plans: dict[str, Side],
    wanted: list[Wanted],
    job_settings: dict[str, Any],
    force: bool,
    reader: Session | None = None,
) -> list[Submitted]:
    """One job of ``kind`` over the models of ``plans`` per ``wanted``: reused, joined or
    created (see the module). A job whose artifacts are all stored already is created exported
    and goes straight to its device queue; a server-side kind always takes the export step,
    where it runs. The cached results are looked up through ``reader`` when given."""
    done = [
        None if force else jobs.measured_job(reader or session, request_key=w.key) for w in wanted
    ]
    if all(job is not None for job in done):
        return [Submitted(job, True) for job in done if job is not None]  # nothing to write
    _check_quota(
        session, settings, user, [w.key for w, job in zip(wanted, done, strict=True) if job is None]
    )
    for plan in plans.values():
        if isinstance(plan, pipeline.Plan):  # an upload's spec row was made by the upload
            _store_spec(session, plan)
    specs = {role: plan.spec_hash for role, plan in plans.items()}
    on_server = get_kind(kind).on_server
    store = ArtifactStore(settings.data_dir)
    submitted = []
    for index, (want, job) in enumerate(zip(wanted, done, strict=True)):
        created = False
        if job is None:
            ready = None if on_server else _ready_keys(session, plans, index, store)
            job, created = jobs.create_or_coalesce(
                session,
                spec_hash=next(iter(specs.values())),
                device_class=want.device.value,
                fmt=want.fmt,
                settings=job_settings,
                request_key=want.key,
                user=user,
                reuse_result=not force,
                kind=kind,
                specs=specs if len(specs) > 1 else None,
                artifact_keys=ready,
            )
            if created and ready:
                dispatcher.dispatch(task_of(job))
            elif created:
                dispatcher.submit(job.id, job.attempt)
        submitted.append(Submitted(job, not created and job.state == JobState.DONE.value))
    return submitted


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
