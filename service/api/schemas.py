"""Request and response bodies at the HTTP edge (pydantic, unknown fields refused)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    model_validator,
)

from devices.results import ComparisonRecord, MeasurementRecord
from devices.settings import MeasureSettings
from exporters.artifacts import KEY_PATTERN
from exporters.formats import DeviceClass, DeviceClassInput, ExportFormat

MAX_OFFSET = 10**9  # far past any table here, far below the 64-bit integers databases overflow at
MAX_ATTEMPT = 10**6  # a job is retried a handful of times; jobs.attempt is a 32-bit column
MAX_DESCRIPTION_DEPTH = 8
MAX_DESCRIPTION_BYTES = 16 * 1024


def _naive_utc(value: datetime) -> datetime:
    """Timestamps are stored as naive UTC; an aware one is converted, inside the range a datetime
    can hold (0001-01-01T00:00:00+01:00 is a year-0 instant in UTC: refused, not a 500)."""
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ValueError("timestamp out of range once converted to UTC") from None


UtcTimestamp = Annotated[datetime, AfterValidator(_naive_utc)]


def _marked_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# A stored (naive UTC) timestamp in an answer: written with its offset, as RFC 3339 (the schema's
# ``date-time``) requires; the value in Python stays naive, comparable with the stored ones.
StoredTime = Annotated[
    datetime, PlainSerializer(_marked_utc, return_type=datetime, when_used="json")
]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _bounded_description(value: dict[str, Any]) -> dict[str, Any]:
    """A runner's description is shown to everyone in /devices and /results: bounded in depth and
    size so that one runner cannot make those answers huge or unserializable."""
    if (depth := json_depth(value)) > MAX_DESCRIPTION_DEPTH:
        raise ValueError(f"nested {depth} deep; at most {MAX_DESCRIPTION_DEPTH}")
    size = len(json.dumps(value, allow_nan=False).encode())
    if size > MAX_DESCRIPTION_BYTES:
        raise ValueError(f"{size} bytes as JSON; at most {MAX_DESCRIPTION_BYTES}")
    return value


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the API (``service.errors``)."""

    error: str = Field(..., description="the error class, e.g. SpecError")
    detail: str = Field(..., description="what went wrong and what to do about it")
    field: str | None = Field(None, description="dotted path of the offending input field")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": what}
    for code, what in (
        (401, "missing or wrong token"),
        (404, "no such object"),
        (409, "contradicts stored state"),
        (413, "request body too large"),
        (422, "invalid input; `field` names it"),
        (429, "queue bound reached"),
        (503, "busy or no runner; see Retry-After"),
    )
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Devices = Annotated[
    list[DeviceClassInput],  # names, `cpu` (the server's CPU class) and aliases: parse_device_class
    AfterValidator(lambda value: list(dict.fromkeys(value))),  # each class once, in order
    Field(
        default_factory=lambda: [DeviceClass.of_this_cpu()],
        min_length=1,
        max_length=len(DeviceClass),
    ),
]


class ProfileCreate(Strict):
    model: str | dict[str, Any] | None = Field(None, description="a zoo name or a ModelSpec object")
    artifact: str | None = Field(
        None,
        pattern=KEY_PATTERN.pattern,
        description="instead of model: the id POST /artifacts returned (measured as uploaded)",
    )
    devices: Devices
    formats: list[ExportFormat] | None = Field(None, min_length=1, max_length=len(ExportFormat))
    settings: MeasureSettings = Field(default_factory=MeasureSettings)
    force: bool = Field(False, description="measure again even if this request has a result")
    predict: bool | None = Field(
        None,
        description="true: a prediction (refused when the class offers none); false: a "
        "measurement, queued for a runner to come; omitted: measured on a class with runners "
        "registered here (online or not), predicted on a class with none that offers a predictor",
    )
    allow_out_of_domain: bool = Field(
        False,
        description="a prediction for a graph with op types the predictor never saw: a number "
        "with the wide out-of-domain interval instead of abstaining (the job fails saying why)",
    )

    @model_validator(mode="after")
    def _model_or_artifact(self) -> ProfileCreate:
        if (self.model is None) == (self.artifact is None):
            raise ValueError("send either model or artifact (an uploaded artifact's id)")
        if self.artifact is not None and self.formats is not None:
            raise ValueError("formats: an uploaded artifact has its own format")
        return self


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
        """The model of side ``role``: a zoo name, a spec, or ``{"artifact": id}``."""
        side = getattr(self, role)
        return side.model_dump() if isinstance(side, ArtifactRef) else side


class JobBrief(BaseModel):
    id: str
    kind: str = "profile"  # "predict": no runner of the class is online, a prediction instead
    device: str
    format: str
    state: str
    cached: bool = False


class ProfileAccepted(BaseModel):
    spec_hash: str
    model: str
    weights: str = "random"
    jobs: list[JobBrief]


class ReparamPublic(BaseModel):
    """The reparameterization behind a result, one shape everywhere (``reparam_summary``):
    ``ok`` None where it does not apply (an uploaded artifact is measured as given)."""

    ok: bool | None
    rel_error: float | None
    tolerance: float | None
    note: str


class ResultPublic(MeasurementRecord):
    """A stored measurement (its fields are the measurement schema's) and where it came from;
    ``samples_ms`` only where asked for (one job's result), not in listings."""

    id: int
    kind: Literal["measured", "predicted"] = "measured"  # predicted: see devices' PredictionRecord
    job_id: str
    model: str
    family: str | None = None
    spec_hash: str
    device_class: str
    format: str
    runner_id: str | None
    runner_revoked: bool = Field(
        False, description="its runner was revoked: shown, never served as cached (re-measured)"
    )
    weights: str = "random"
    artifact: dict[str, Any] | None = None
    reparam: ReparamPublic | None = None
    created_at: StoredTime


class SidePublic(BaseModel):
    model: str
    spec_hash: str
    weights: str = "random"
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
    created_at: StoredTime


class CvErrorPublic(BaseModel):
    """Nested leave-one-family-out verdict on the method offered for the class."""

    median_ape_pct: float  # inside the domain
    spearman: float  # inside the domain
    rows: int
    folds: int
    scheme: str
    abstained_share: float  # held-out cases outside the domain (no number by default)
    interval_level: float  # nominal
    coverage_inside: float  # achieved by the inside interval
    coverage_outside: float  # achieved by the wide outside interval
    baselines: dict[str, float]  # other methods' median abs % error (what it had to beat)


class PredictorPublic(BaseModel):
    """A device class served by a predictor: a virtual device, with how wrong it tends to be."""

    device_class: str
    virtual: bool = True
    version: str
    method: str
    training_rows: int
    families: list[str]
    cv: CvErrorPublic
    offered_because: str  # the method offered beat every other one (or the predictor lost)
    online_runner: bool  # a runner of the class is online: requests are measured, not predicted


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
    runner_revoked: bool = Field(
        False, description="its runner was revoked: its result answers no later request"
    )
    submitted_by: str = Field(description="the user who submitted it (coalesced: the first)")
    settings: dict[str, Any]
    created_at: StoredTime
    started_at: StoredTime | None
    finished_at: StoredTime | None
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
    name: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="the runner's stable name (its host's, or --name): registering again under "
        "it, with the same credential, takes its row back instead of adding one",
    )
    description: Annotated[dict[str, Any], AfterValidator(_bounded_description)] = Field(
        default_factory=dict, max_length=64
    )


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
    last_heartbeat: StoredTime


class RunnersPublic(BaseModel):
    data: list[RunnerPublic]
    count: int


class DevicesPublic(RunnersPublic):
    """The runners, and the predictors of classes that have one (virtual devices)."""

    predictors: list[PredictorPublic]


class Claim(Strict):
    job_id: str = Field(..., max_length=32)
    attempt: int = Field(..., ge=1, le=MAX_ATTEMPT)


class ResultPost(Claim):
    result: dict[str, Any] = Field(
        ...,
        validation_alias=AliasChoices("result", "measurement"),  # runners before job kinds
        description="the job kind's result; validated against that kind's schema",
    )


class FailurePost(Claim):
    error: str = Field(..., max_length=4000)
