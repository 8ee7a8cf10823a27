"""Measurement settings: what a user (or the API) may ask of a runner, validated at the edge.

Every field ends up in the result next to the numbers it produced, so a latency is never quoted
without the thread count, optimisation level and spinning policy that shaped it. A field left at
``None`` is left to the runtime: a single-model profile then measures what an application with
the runtime's default session options sees, and the runner records the values it read back.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devices.sampling import StopPolicy, WarmupPolicy
from exporters.errors import spec_error_from

GraphOptimization = Literal["disable", "basic", "extended", "all"]
ComputeUnits = Literal["ALL", "CPU_AND_NE", "CPU_ONLY", "CPU_AND_GPU"]


class MeasureSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="intra-op threads; None: the runtime's default "
        "(onnxruntime and PyTorch: one per physical core)",
    )
    graph_optimization: GraphOptimization = "all"
    intra_op_spinning: bool | None = Field(
        None,
        description="ORT workers busy-wait after a run; None: the runtime's default (on). A/B "
        "mode turns it off unless set: spinning pools of two interleaved sessions steal each "
        "other's cores",
    )
    target_rel_ci: float = Field(
        0.01,
        gt=0,
        le=0.5,
        description="stop when the 95% CI of the median is within ± this fraction of it",
    )
    min_iters: int = Field(20, ge=5, le=100_000)
    max_iters: int = Field(1000, ge=5, le=100_000)
    max_seconds: float = Field(30.0, gt=0, le=3600)
    warmup_max_iters: int = Field(300, ge=1, le=100_000)
    warmup_max_seconds: float = Field(15.0, gt=0, le=600)
    input_pool: int = Field(8, ge=1, le=64, description="distinct random input buffers cycled")
    seed: int = Field(0, ge=0)
    ab_reloads: int = Field(
        6,
        ge=2,
        le=50,
        description="A/B mode: fresh session pairs; the CI is built across them. Keep it even: "
        "load order alternates, and the side loaded second runs ~1% faster here",
    )
    ab_blocks: int = Field(
        15, ge=1, le=10_000, description="A/B mode: ABBA blocks per session pair"
    )
    torch_compile: bool = False
    compute_units: ComputeUnits = Field("ALL", description="CoreML; ALL is Core ML's default")
    sustained_seconds: float | None = Field(
        None,
        gt=0,
        le=3600,
        description="sustained mode: sample for this long after warm-up, no adaptive stop, and "
        "report the median per window so thermal throttling shows as a trend",
    )
    window_seconds: float = Field(10.0, gt=0, le=600, description="sustained mode: window length")

    def warmup_policy(self) -> WarmupPolicy:
        return WarmupPolicy(max_iters=self.warmup_max_iters, max_seconds=self.warmup_max_seconds)

    def stop_policy(self) -> StopPolicy:
        return StopPolicy(
            target=self.target_rel_ci,
            min_iters=min(self.min_iters, self.max_iters),
            max_iters=self.max_iters,
            max_seconds=self.max_seconds,
        )


def ab_isolated(settings: MeasureSettings) -> MeasureSettings:
    """A/B mode's settings: spinning off unless the user chose, so neither session's idle
    workers busy-wait on the cores the other one is running on."""
    if settings.intra_op_spinning is not None:
        return settings
    return settings.model_copy(update={"intra_op_spinning": False})


def parse_settings(data: Any) -> MeasureSettings:
    """Validate untrusted settings; errors name the field (``settings.<name>``)."""
    if isinstance(data, MeasureSettings):
        return data
    try:
        return MeasureSettings.model_validate(data or {})
    except ValidationError as exc:
        raise spec_error_from(exc.errors(), prefix=("settings",)) from exc
