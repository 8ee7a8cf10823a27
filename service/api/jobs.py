"""GET /jobs/{id} (state, timestamps, error, result when done) and GET /jobs with filters."""

from __future__ import annotations

from fastapi import APIRouter, Query

from exporters.formats import DeviceClass
from service.api.deps import CallerDep, ReadSessionDep
from service.api.present import job_public, job_view
from service.api.responses import ModelJSON
from service.api.schemas import JobPublic, JobsPublic, Offset
from service.db import jobs
from service.db.jobs import JobState

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobPublic)
def read_job(job_id: str, session: ReadSessionDep, caller: CallerDep) -> ModelJSON:
    """One job: its state, timestamps, error, and its result once done (someone else's upload's
    job: the 404 of a job that does not exist)."""
    return ModelJSON(job_view(session, job_id=job_id, viewer=None if caller.admin else caller.name))


@router.get("", response_model=JobsPublic)
def list_jobs(
    session: ReadSessionDep,
    caller: CallerDep,
    state: JobState | None = None,
    device: DeviceClass | None = None,
    model: str | None = Query(None, max_length=128),
    limit: int = Query(100, ge=1, le=1000),
    offset: Offset = 0,
) -> ModelJSON:
    """Jobs, newest first, filtered by state, device class or model."""
    rows, count = jobs.list_jobs(
        session,
        state=state.value if state else None,
        device_class=device.value if device else None,
        model=model,
        limit=limit,
        offset=offset,
        viewer=None if caller.admin else caller.name,
    )
    return ModelJSON(JobsPublic(data=[job_public(session, row) for row in rows], count=count))
