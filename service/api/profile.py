"""POST /profile: one job per requested device; cached results and identical requests coalesce.
A device class with a predictor and no runner online gets a ``predict`` job instead."""

from __future__ import annotations

from fastapi import APIRouter, status

from exporters.sources.ready import weights_said
from service import pipeline
from service.api.deps import (
    DispatcherDep,
    SessionsDep,
    SettingsDep,
    UserDep,
    WithinBudgetDep,
)
from service.api.present import job_brief
from service.api.schemas import ProfileAccepted, ProfileCreate
from service.jobs import submission
from service.predict.job import has_predictor

router = APIRouter(tags=["profile"])


@router.post("/profile", status_code=status.HTTP_202_ACCEPTED, response_model=ProfileAccepted)
def create_profile(
    body: ProfileCreate,
    _budget: WithinBudgetDep,  # before the session: no slot is held while it is estimated
    sessions: SessionsDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    user: UserDep,
) -> ProfileAccepted:
    """Measure a model on one or more device classes (202: jobs to poll at GET /jobs/{id});
    a class nobody can measure now but a predictor covers is predicted (job kind ``predict``)."""
    may_predict = (
        body.predict
        and body.artifact is None  # an upload is measured as given, never predicted
        and submission.runs_server_kinds(settings)
    )
    measurable = (
        submission.measurable(
            sessions.read, settings=settings, dispatcher=dispatcher, devices=body.devices
        )
        if may_predict
        else set(body.devices)
    )
    predicted = [
        d for d in body.devices if d not in measurable and has_predictor(d.value, settings.data_dir)
    ]
    measured = [d for d in body.devices if d not in predicted]
    common = {"settings": settings, "dispatcher": dispatcher, "user": user, "model": body.model}
    submissions = []
    if measured:
        submissions.append(
            submission.submit_profile(
                sessions.write,
                **common,
                artifact=body.artifact,
                devices=measured,
                formats=body.formats,
                measure=body.settings,
                force=body.force,
                reader=sessions.read,
            )
        )
    if predicted:
        submissions.append(
            submission.submit_predict(
                sessions.write, **common, devices=predicted, formats=body.formats, force=body.force
            )
        )
    by_device = {s.job.device_class: s for sub in submissions for s in sub.jobs}
    briefs = [
        job_brief(by_device[d.value].job, cached=by_device[d.value].cached) for d in body.devices
    ]
    plan = submissions[0].plan
    return ProfileAccepted(
        spec_hash=plan.spec_hash,
        model=plan.model,
        weights=weights_said(isinstance(plan, pipeline.Upload)),
        jobs=briefs,
    )
