"""GET /devices: registered runners: class, description, online by heartbeat, current job."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import ReadSessionDep, UserDep
from service.api.present import runner_public
from service.api.responses import ModelJSON
from service.api.schemas import RunnersPublic
from service.db import runners

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("", response_model=RunnersPublic)
def read_devices(session: ReadSessionDep, _user: UserDep) -> ModelJSON:
    """The registered runners: device class, host facts, online, current job."""
    rows = runners.list_runners(session)
    return ModelJSON(RunnersPublic(data=[runner_public(r) for r in rows], count=len(rows)))
