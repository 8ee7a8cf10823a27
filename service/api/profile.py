"""POST /profile: one job per requested device; cached results and identical requests coalesce."""

from __future__ import annotations

from fastapi import APIRouter, status

from service import jobservice
from service.api.deps import DispatcherDep, SessionDep, SettingsDep, UserDep
from service.api.present import job_brief
from service.api.schemas import ProfileAccepted, ProfileCreate

router = APIRouter(tags=["profile"])


@router.post("/profile", status_code=status.HTTP_202_ACCEPTED, response_model=ProfileAccepted)
def create_profile(
    body: ProfileCreate,
    session: SessionDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    user: UserDep,
) -> ProfileAccepted:
    """Measure a model on one or more device classes (202: jobs to poll at GET /jobs/{id})."""
    submission = jobservice.submit_profile(
        session,
        settings=settings,
        dispatcher=dispatcher,
        user=user,
        model=body.model,
        artifact=body.artifact,
        devices=body.devices,
        formats=body.formats,
        measure=body.settings,
        force=body.force,
    )
    briefs = [job_brief(s.job, cached=s.cached) for s in submission.jobs]
    plan = submission.plan
    return ProfileAccepted(spec_hash=plan.spec_hash, model=plan.model, jobs=briefs)
