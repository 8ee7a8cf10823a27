"""Request and response bodies at the HTTP edge (pydantic, unknown fields refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from devices.settings import MeasureSettings
from exporters.formats import DeviceClass, ExportFormat
from service.api.measurement import MeasurementIn


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProfileCreate(Strict):
    model: str | dict[str, Any] = Field(..., description="a zoo name or a ModelSpec object")
    devices: list[DeviceClass] = Field(
        default_factory=lambda: [DeviceClass.of_this_cpu()],
        min_length=1,
        max_length=len(DeviceClass),
    )
    formats: list[ExportFormat] | None = Field(None, min_length=1, max_length=len(ExportFormat))
    settings: MeasureSettings = Field(default_factory=MeasureSettings)
    force: bool = Field(False, description="measure again even if this request has a result")

    @field_validator("devices")
    @classmethod
    def _unique(cls, value: list[DeviceClass]) -> list[DeviceClass]:
        return list(dict.fromkeys(value))


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


class ResultPublic(BaseModel):
    id: int
    job_id: str
    model: str
    family: str | None = None
    spec_hash: str
    device_class: str
    format: str
    runner_id: str | None
    weights: str = "random"
    latency_ms: dict[str, Any]
    device: dict[str, Any]
    host_load: dict[str, Any]
    settings: dict[str, Any]
    target_met: bool | None = None
    stop_reason: str | None = None
    load_ms: float | None = None
    warmup_iters: int | None = None
    peak_memory_mb: float | None = None
    notes: list[str] = []
    conditions: dict[str, Any] | None = None  # CPU clock, governor, thermal, power, versions
    windows: list[dict[str, Any]] | None = None  # sustained mode
    profiler_overhead: dict[str, float] | None = None
    artifact: dict[str, Any] | None = None
    samples_ms: list[float] | None = None
    created_at: datetime


class ResultsPublic(BaseModel):
    data: list[ResultPublic]
    count: int


class JobPublic(BaseModel):
    id: str
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
    result: ResultPublic | None = None


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
    measurement: MeasurementIn


class FailurePost(Claim):
    error: str = Field(..., max_length=4000)
