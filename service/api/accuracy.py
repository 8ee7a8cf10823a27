"""POST /accuracy: attach a user's top-1 (dataset, resolution, source, note) to what they measured;
GET /accuracy lists them. The figure belongs to a spec (its content hash), never to a model name:
a FastViT with other widths is not the published FastViT."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field, model_validator

from exporters.spec import parse_spec
from service.api.deps import CallerDep, SessionDep
from service.api.schemas import Strict
from service.db import accuracy
from service.db.tables import AccuracyRow

router = APIRouter(prefix="/accuracy", tags=["accuracy"])


class AccuracyCreate(Strict):
    model: str | dict[str, Any] | None = Field(
        None, description="a zoo name or a ModelSpec object, as sent to POST /profile"
    )
    spec_hash: str | None = Field(None, min_length=8, max_length=64, pattern=r"^[0-9a-f]+$")
    top1: float = Field(..., ge=0, le=100, description="top-1 accuracy in percent")
    dataset: str = Field("imagenet-1k", min_length=1, max_length=64)
    resolution: int | None = Field(None, ge=16, le=2048, description="evaluation input side")
    source: str = Field(..., min_length=1, max_length=256, description="run id, URL or paper")
    note: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _one_subject(self) -> AccuracyCreate:
        if (self.model is None) == (self.spec_hash is None):
            raise ValueError("give exactly one of model (a spec) or spec_hash")
        return self


class AccuracyPublic(BaseModel):
    subject: str
    top1: float
    dataset: str
    resolution: int | None
    source: str
    note: str | None
    user: str
    kind: str = "user"
    created_at: datetime


class AccuraciesPublic(BaseModel):
    data: list[AccuracyPublic]
    count: int


def accuracy_public(row: AccuracyRow) -> AccuracyPublic:
    return AccuracyPublic.model_validate(row, from_attributes=True)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AccuracyPublic)
def attach_accuracy(body: AccuracyCreate, session: SessionDep, caller: CallerDep) -> AccuracyPublic:
    # the same hash POST /profile stored: parse_spec's errors name the spec's field, as there
    subject = body.spec_hash or parse_spec(body.model).content_hash()
    row = accuracy.set_accuracy(
        session,
        subject=subject,
        top1=body.top1,
        dataset=body.dataset,
        resolution=body.resolution,
        source=body.source,
        note=body.note,
        caller=caller,
    )
    return accuracy_public(row)


@router.get("", response_model=AccuraciesPublic)
def read_accuracies(session: SessionDep, caller: CallerDep) -> AccuraciesPublic:
    shown = accuracy.accuracies(session, viewer=None if caller.admin else caller.name)
    data = [accuracy_public(row) for row in shown.values()]
    return AccuraciesPublic(data=data, count=len(data))
