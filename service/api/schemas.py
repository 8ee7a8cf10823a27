"""Request and response bodies at the HTTP edge (pydantic, unknown fields refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
)

from devices.results import ComparisonRecord, MeasurementRecord
from devices.settings import MeasureSettings
from exporters.artifacts import KEY_PATTERN
from exporters.errors import SpecError
from exporters.formats import DeviceClass, ExportFormat


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Devices = Annotated[
    list[DeviceClass],
    AfterValidator(lambda value: list(dict.fromkeys(value))),  # each class once, in order
    Field(
        default_factory=lambda: [DeviceClass.of_this_cpu()],
        min_length=1,
        max_length=len(DeviceClass),
    ),
]


class ProfileCreate(Strict):
    model: str | dict[str, Any] = Field(..., description="a zoo name or a ModelSpec object")
    devices: Devices
    formats: list[ExportFormat] | None = Field(None, min_length=1, max_length=len(ExportFormat))
    settings: MeasureSettings = Field(default_factory=MeasureSettings)
    force: bool = Field(False, description="measure again even if this request has a result")


class ArtifactRef(Strict):
    artifact: str = Field(
        ..., pattern=KEY_PATTERN.pattern, description="the id POST /artifacts returned"
    )


def _side_form(value: Any) -> str:
    if isinstance(value, ArtifactRef) or (isinstance(value, dict) and "artifact" in value):
        return "artifact"
    return "spec" if isinstance(value, dict) else "name"


Side = Annotated[
    Annotated[ArtifactRef, Tag("artifact")]
    | Annotated[dict[str, Any], Tag("spec")]
    | Annotated[str, Tag("name")],
    Discriminator(_side_form),
    Field(description='a zoo name, a ModelSpec object, or {"artifact": id} of an upload'),
]


class CompareCreate(Strict):
    baseline: Side
    candidate: Side
    devices: Devices
    settings: MeasureSettings = Field(default_factory=MeasureSettings)
    force: bool = Field(False, description="compare again even if this request has a result")

    def model_of(self, role: str) -> str | dict[str, Any]:
        """The model of side ``role``; an artifact id is refused until uploads reach compare."""
        side = getattr(self, role)
        if isinstance(side, ArtifactRef):
            raise SpecError(
                "this server compares models (a zoo name or a spec) only; comparing uploaded "
                "artifacts by id is not available yet",
                field=f"{role}.artifact",
            )
        return side


class JobBrief(BaseModel):
    id: str
    device: str
    format: str
    state: str
    cached: bool = False


class ProfileAccepted(BaseModel):
    spec_hash: str
    model: str
    weights: str = "random"
    jobs: list[JobBrief]


class ResultPublic(MeasurementRecord):
    """A stored measurement (its fields are the measurement schema's) and where it came from;
    ``samples_ms`` only where asked for (one job's result), not in listings."""

    id: int
    job_id: str
    model: str
    family: str | None = None
    spec_hash: str
    device_class: str
    format: str
    runner_id: str | None
    weights: str = "random"
    artifact: dict[str, Any] | None = None
    created_at: datetime


class SidePublic(BaseModel):
    model: str
    spec_hash: str
    artifact: dict[str, Any] | None = None


class CompareAccepted(BaseModel):
    baseline: SidePublic
    candidate: SidePublic
    weights: str = "random"
    jobs: list[JobBrief]


class ComparisonPublic(ComparisonRecord):
    """A stored comparison (its fields are the comparison schema's: ``a`` is the baseline, ``b``
    the candidate, ``ratio`` is b/a) and what it compared where."""

    id: int
    job_id: str
    baseline: SidePublic
    candidate: SidePublic
    device_class: str
    format: str
    runner_id: str | None
    weights: str = "random"
    created_at: datetime


class ResultsPublic(BaseModel):
    data: list[ResultPublic]
    count: int


class JobPublic(BaseModel):
    id: str
    kind: str = "profile"
    model: str
    spec_hash: str
    device: str
    format: str
    state: str
    attempt: int
    error: str | None
    runner_id: str | None
    settings: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: ResultPublic | ComparisonPublic | None = Field(None, description="per the kind")


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int


class ModelPublic(BaseModel):
    name: str
    family: str
    params: int | None = None
    macs: int | None = None
    input_size: list[int]
    reference_top1: float | None = None
    reference_source: str | None = None
    weights: str = "random"


class ModelsPublic(BaseModel):
    data: list[ModelPublic]
    count: int


class RunnerCreate(Strict):
    device_class: DeviceClass
    description: dict[str, Any] = Field(default_factory=dict, max_length=64)


class RunnerRegistered(BaseModel):
    id: str
    token: str
    broker_url: str | None
    queue_namespace: str = ""
    heartbeat_interval_s: float


class RunnerPublic(BaseModel):
    id: str
    device_class: str
    description: dict[str, Any]
    online: bool
    current_job_id: str | None
    last_heartbeat: datetime


class RunnersPublic(BaseModel):
    data: list[RunnerPublic]
    count: int


class Claim(Strict):
    job_id: str = Field(..., max_length=32)
    attempt: int = Field(..., ge=1)


class ResultPost(Claim):
    result: dict[str, Any] = Field(
        ...,
        validation_alias=AliasChoices("result", "measurement"),  # runners before job kinds
        description="the job kind's result; validated against that kind's schema",
    )


class FailurePost(Claim):
    error: str = Field(..., max_length=4000)
