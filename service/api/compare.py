"""POST /compare: one A/B job per requested device; cached results and identical requests coalesce."""

from __future__ import annotations

from fastapi import APIRouter, status

from exporters.sources.ready import weights_said
from service import pipeline
from service.api.deps import DispatcherDep, SessionDep, SettingsDep, UserDep
from service.api.present import job_brief
from service.api.schemas import CompareAccepted, CompareCreate, SidePublic
from service.jobs import submission

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
    accepted = submission.submit_compare(
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
        for role, side in (("baseline", accepted.baseline), ("candidate", accepted.candidate))
    }
    return CompareAccepted(
        baseline=SidePublic(
            model=accepted.baseline.model,
            spec_hash=accepted.baseline.spec_hash,
            weights=weights_said(uploaded["baseline"]),
        ),
        candidate=SidePublic(
            model=accepted.candidate.model,
            spec_hash=accepted.candidate.spec_hash,
            weights=weights_said(uploaded["candidate"]),
        ),
        weights=weights_said(*uploaded.values()),
        jobs=[job_brief(s.job, cached=s.cached) for s in accepted.jobs],
    )
