"""GET /devices: registered runners (class, description, online by heartbeat, current job) and
the predictors of device classes as virtual devices, with their cross-validated error."""

from __future__ import annotations

from fastapi import APIRouter

from exporters.formats import DeviceClass
from service.api.deps import DispatcherDep, ReadSessionDep, SettingsDep, UserDep
from service.api.present import predictor_public, runner_public
from service.api.responses import ModelJSON
from service.api.schemas import DevicesPublic
from service.db import runners
from service.jobs import submission
from service.predict.job import predictors

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("", response_model=DevicesPublic)
def read_devices(
    session: ReadSessionDep, settings: SettingsDep, dispatcher: DispatcherDep, _user: UserDep
) -> ModelJSON:
    """The registered runners, and each class's predictor (answers POST /profile for a class
    while no runner of it is online)."""
    rows = runners.list_runners(session)
    fitted = predictors(settings.data_dir)
    measurable = submission.measurable(
        session,
        settings=settings,
        dispatcher=dispatcher,
        devices=[DeviceClass(p.device_class) for p in fitted],
        registered=rows,
    )
    virtual = [
        predictor_public(p, online_runner=DeviceClass(p.device_class) in measurable) for p in fitted
    ]
    return ModelJSON(
        DevicesPublic(data=[runner_public(r) for r in rows], count=len(rows), predictors=virtual)
    )
