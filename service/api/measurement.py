"""The measurement a runner posts, typed at the HTTP edge so that what is stored can always be
served back (GET /jobs/{id}, GET /results). Keys the runner adds beyond these are kept as sent."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class LatencyIn(Open):
    median: float
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    p90: float | None = None
    p99: float | None = None
    std: float | None = None
    iqr: float | None = None
    cv: float | None = None
    ci95: tuple[float, float] | None = None
    n: int | None = Field(None, ge=0)


class MeasurementIn(Open):
    latency_ms: LatencyIn
    samples_ms: list[float] | None = None
    cpu_ms: LatencyIn | None = None
    warmup_iters: int | None = None
    warmup_steady: bool | None = None
    load_ms: float | None = None
    peak_memory_mb: float | None = None
    memory_source: str | None = None
    target_met: bool | None = None
    stop_reason: str | None = None
    ci_halfwidth: float | None = None
    runner: str | None = None
    artifact: str | None = None
    device: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    host_load: dict[str, Any] = Field(default_factory=dict)
    layers: dict[str, Any] | None = None
    notes: list[str] = Field(default_factory=list)
    conditions: dict[str, Any] | None = None
    windows: list[dict[str, Any]] | None = None
    profiler_overhead: dict[str, float] | None = None

    def stored(self) -> dict[str, Any]:
        """The measurement as posted (validated), without defaults it did not send."""
        return self.model_dump(mode="json", exclude_unset=True)
