"""POST /profile: one job per requested device; cached results and identical requests coalesce."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy.orm import Session

from exporters.errors import QuotaError, SpecError
from service import pipeline
from service.api.deps import DispatcherDep, SessionDep, SettingsDep, UserDep
from service.api.schemas import JobBrief, ProfileAccepted, ProfileCreate
from service.db import jobs
from service.db.jobs import JobState
from service.settings import Settings

router = APIRouter(tags=["profile"])


@router.post("/profile", status_code=status.HTTP_202_ACCEPTED, response_model=ProfileAccepted)
def create_profile(
    body: ProfileCreate,
    session: SessionDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    user: UserDep,
) -> ProfileAccepted:
    plan = pipeline.plan(body.model, body.devices, body.formats)
    for target in plan.targets:
        if not dispatcher.serves(target.device_class.value):
            scope = (
                "it measures on this host only"
                if settings.local_runner
                else "its embedded runner is off, LATBENCH_LOCAL_RUNNER=false"
            )
            raise SpecError(
                f"{target.device_class.value!r} cannot be measured by the "
                f"{settings.dispatcher} dispatcher of this server ({scope}; "
                "use LATBENCH_DISPATCHER=celery to attach runners)",
                field="devices",
            )
    keyed = []
    for target in plan.targets:
        key = pipeline.request_key(spec_hash=plan.spec_hash, target=target, settings=body.settings)
        keyed.append(
            (target, key, None if body.force else jobs.measured_job(session, request_key=key))
        )
    _check_quota(session, settings, user, [key for _, key, done in keyed if done is None])
    jobs.upsert_spec(
        session,
        spec_hash=plan.spec_hash,
        model=plan.spec.model,
        family=plan.family,
        body=plan.spec.model_dump(mode="json"),
    )
    briefs = []
    for target, key, job in keyed:
        created = False
        if job is None:
            job, created = jobs.create_or_coalesce(
                session,
                spec_hash=plan.spec_hash,
                device_class=target.device_class.value,
                fmt=target.format.value,
                settings=body.settings.model_dump(mode="json"),
                request_key=key,
                user=user,
                reuse_result=not body.force,
            )
            if created:
                dispatcher.submit(job.id, job.attempt)
        cached = not created and job.state == JobState.DONE.value
        briefs.append(
            JobBrief(
                id=job.id,
                device=job.device_class,
                format=job.format,
                state=job.state,
                cached=cached,
            )
        )
    return ProfileAccepted(spec_hash=plan.spec_hash, model=plan.spec.model, jobs=briefs)


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
