"""POST /compare: one A/B job per requested device; cached results and identical requests coalesce."""

from __future__ import annotations

from fastapi import APIRouter, status

from exporters.sources.ready import weights_said
from service import jobservice, pipeline
from service.api.deps import DispatcherDep, SessionDep, SettingsDep, UserDep
from service.api.present import job_brief
from service.api.schemas import CompareAccepted, CompareCreate, SidePublic

router = APIRouter(tags=["compare"])


@router.post("/compare", status_code=status.HTTP_202_ACCEPTED, response_model=CompareAccepted)
def create_compare(
    body: CompareCreate,
    session: SessionDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    user: UserDep,
) -> CompareAccepted:
    """Latency ratio candidate/baseline with its CI per device class (202: poll GET /jobs/{id})."""
    submission = jobservice.submit_compare(
        session,
        settings=settings,
        dispatcher=dispatcher,
        user=user,
        baseline=body.model_of("baseline"),
        candidate=body.model_of("candidate"),
        devices=body.devices,
        measure=body.settings,
        force=body.force,
    )
    uploaded = {
        role: isinstance(side, pipeline.Upload)
        for role, side in (("baseline", submission.baseline), ("candidate", submission.candidate))
    }
    return CompareAccepted(
        baseline=SidePublic(
            model=submission.baseline.model,
            spec_hash=submission.baseline.spec_hash,
            weights=weights_said(uploaded["baseline"]),
        ),
        candidate=SidePublic(
            model=submission.candidate.model,
            spec_hash=submission.candidate.spec_hash,
            weights=weights_said(uploaded["candidate"]),
        ),
        weights=weights_said(*uploaded.values()),
        jobs=[job_brief(s.job, cached=s.cached) for s in submission.jobs],
    )
