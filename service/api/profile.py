"""POST /profile: one job per requested device; cached results and identical requests coalesce.
Each class is measured, predicted or refused by ``service.predict.routing.decide``: a class
nobody here measures (no runner registered) that offers a predictor gets a ``predict`` job."""

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
from service.db import runners
from service.jobs import submission
from service.predict.job import has_predictor
from service.predict.routing import Route, decide, refusal

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
    a class nobody here measures but a predictor covers is predicted (job kind ``predict``)."""
    registered = {r.device_class for r in runners.list_runners(sessions.read)}
    decisions = [
        decide(
            d.value,
            requested=body.predict,
            upload=body.artifact is not None,
            measured_here=d.value in registered
            or (settings.dispatcher == "local" and dispatcher.serves(d.value)),
            offers_prediction=has_predictor(d.value, settings.data_dir),
            predicts_here=submission.runs_server_kinds(settings),
        )
        for d in body.devices
    ]
    if (refused := refusal(decisions)) is not None:
        raise refused
    predicted = [
        d for d, r in zip(body.devices, decisions, strict=True) if r.route is Route.PREDICT
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
                sessions.write,
                **common,
                devices=predicted,
                formats=body.formats,
                force=body.force,
                allow_out_of_domain=body.allow_out_of_domain,
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
