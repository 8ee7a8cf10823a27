"""What a runner returns: a Measurement of one artifact, or a Comparison of two (A/B mode), and
their records, ``MeasurementRecord`` and ``ComparisonRecord``: the one schema of each wherever it
leaves the runner's objects (the HTTP body a runner posts, the database column, the API's result),
validated before it is stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from devices.stats import RatioEstimate, Summary
from exporters.formats import QUANTIZATION_METADATA_KEY

# Relative slack for float rounding in quantile interpolation (np.quantile may land an ulp off).
_ROUNDING = 1e-9


class Open(BaseModel):
    """Keys a newer runner adds beyond these are kept as sent (old servers store new fields)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class LatencyRecord(Open):
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
    n: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _physical(self) -> LatencyRecord:
        """Times are never negative, quantiles are ordered and the median's interval brackets it:
        a record breaking these was invented or corrupted, and must never be stored."""
        for name in ("median", "mean", "min", "max", "p90", "p99", "std", "iqr", "cv"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} is {value}: a time or spread cannot be negative")
        quantiles = [(n, getattr(self, n)) for n in ("min", "median", "p90", "p99", "max")]
        present = [(n, v) for n, v in quantiles if v is not None]
        for (low_name, low), (high_name, high) in pairwise(present):
            if low > high * (1 + _ROUNDING):
                raise ValueError(f"{low_name} {low} exceeds {high_name} {high}: quantiles disorder")
        if self.ci95 is not None:
            low, high = self.ci95
            if not low * (1 - _ROUNDING) <= self.median <= high * (1 + _ROUNDING):
                raise ValueError(
                    f"ci95 {list(self.ci95)} does not bracket the median {self.median}"
                )
        return self


class QuantizationRecord(Open):
    """How a quantized artifact was made and what of it runs in int8, as the artifact states
    it (``exporters.quantize``): a synthetic-calibrated one is a latency-only artifact."""

    scheme: str
    calibration: Literal["user", "synthetic", "none"]
    samples: int = Field(..., ge=0)
    int8_mac_fraction: float | None = Field(None, ge=0, le=1)
    float_islands: list[dict[str, Any]] = Field(default_factory=list)
    sqnr_db: float | None = None


def declared_quantization(metadata: dict[str, str]) -> dict[str, Any] | None:
    """The quantization statement in an artifact's metadata, validated; None when there is
    none (float artifacts) or it does not parse (an artifact from elsewhere: not ours to trust)."""
    text = metadata.get(QUANTIZATION_METADATA_KEY)
    if text is None:
        return None
    try:
        return QuantizationRecord.model_validate_json(text).model_dump(mode="json")
    except ValueError:
        return None


class MeasurementRecord(Open):
    """A measurement as stored and served; only ``latency_ms`` is required, so that results of
    older runners stay readable. New groups of fields go in as nested optional models."""

    latency_ms: LatencyRecord
    samples_ms: list[Annotated[float, Field(gt=0)]] | None = None
    cpu_ms: LatencyRecord | None = None
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
    conditions: dict[str, Any] | None = None  # CPU clock, governor, thermal, power, versions
    windows: list[dict[str, Any]] | None = None  # sustained mode: the median per time window
    profiler_overhead: dict[str, float] | None = None  # layer timing against the plain median
    quantization: QuantizationRecord | None = None  # quantized artifacts: their statement

    @field_validator("latency_ms")
    @classmethod
    def _positive_wall_time(cls, value: LatencyRecord) -> LatencyRecord:
        """Wall time of a run is strictly positive (CPU time, ``cpu_ms``, may round to zero)."""
        for name in ("median", "min"):
            measured = getattr(value, name)
            if measured is not None and measured <= 0:
                raise ValueError(f"{name} is {measured}: a run takes a positive time")
        return value

    def stored(self) -> dict[str, Any]:
        """The JSON column's value: what was set, without defaults it did not send."""
        return self.model_dump(mode="json", exclude_unset=True)


class PredictedLatency(LatencyRecord):
    """A predicted latency: ``median`` is the prediction, ``interval`` its prediction interval."""

    interval: tuple[float, float]
    level: float = Field(..., gt=0, lt=1)  # the interval's coverage (0.8: 10% to 90%)
    achieved: float | None = Field(None, ge=0, le=1)  # what such intervals covered in nested CV


class PredictionRecord(MeasurementRecord):
    """A prediction as stored and served, in the measurement's shape so that listings and the
    dashboard read it alike, and never mistaken for one: ``kind`` is always ``predicted``.
    ``predictor`` holds its version, training rows and cross-validated error (``cv``);
    ``domain`` whether the spec is inside the training data, with the reasons when not."""

    kind: Literal["predicted"]  # required: every stored prediction says it is one
    latency_ms: PredictedLatency
    predictor: dict[str, Any]
    domain: dict[str, Any]
    breakdown_ms: dict[str, float] = Field(default_factory=dict)


class RatioRecord(Open):
    """A ratio B/A with its 95% CI, built across the per-reload estimates listed."""

    ratio: float = Field(..., gt=0)
    ci95: tuple[float, float]
    per_reload_ratios: list[float] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ci_contains_ratio(self) -> RatioRecord:
        lo, hi = self.ci95
        if not 0 < lo <= self.ratio <= hi:
            raise ValueError(f"ci95 [{lo}, {hi}] must be positive and contain ratio {self.ratio}")
        return self


class ComparisonRecord(RatioRecord):
    """An A/B comparison as stored and served (``Comparison.to_dict()``, so it is also what
    ``latbench compare --json`` prints and ``latbench gate`` reads): ``a`` is the baseline, ``b``
    the candidate, ``ratio`` is b/a on wall-clock time, ``cpu_ratio`` the same on the computing
    thread's CPU time (single-thread CPU runs only), ``reloads`` the session pairs used."""

    reloads: int = Field(..., ge=1)
    a: LatencyRecord
    b: LatencyRecord
    cpu_ratio: RatioRecord | None = None
    n: int | None = Field(None, ge=0)
    samples_a: list[float] | None = None
    samples_b: list[float] | None = None
    load_ms: tuple[float, float] | None = None
    order: str | None = None
    runner: str | None = None
    device: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    host_load: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


MAX_STORED_SAMPLES = 1000  # per list: a compare record's two lists fit the result body bound


def stored_samples(samples: Sequence[float], limit: int = MAX_STORED_SAMPLES) -> list[float]:
    """Every sample up to ``limit``; past it ``limit`` evenly spaced ones in run order, the first
    and the last included: deterministic (the same run stores the same subset) and spread over
    the whole run, so drift stays visible. ``latency_ms.n`` still counts them all."""
    n = len(samples)
    if n <= limit:
        return list(samples)
    return [samples[round(i * (n - 1) / (limit - 1))] for i in range(limit)]


@dataclass
class Measurement:
    runner: str
    artifact: str  # file name only: the store owns the path
    latency_ms: Summary
    samples_ms: tuple[float, ...]
    cpu_ms: Summary | None  # calling thread's CPU time per run; single-thread CPU runs only
    warmup_iters: int
    warmup_steady: bool
    load_ms: float
    peak_memory_mb: float | None
    memory_source: str | None  # "runtime" (device allocator) or "rss" (process growth), or None
    target_met: bool
    stop_reason: str
    ci_halfwidth: float  # relative half-width of the 95% CI of the median reached
    device: dict[str, Any]
    settings: dict[str, Any]  # requested settings plus the effective runtime/session options
    host_load: dict[str, float]
    layers: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)  # conditions that qualify the numbers
    conditions: dict[str, Any] | None = None  # CPU clock, governor, thermal, power, versions
    windows: list[dict[str, Any]] | None = None  # sustained mode: median per time window
    profiler_overhead: ProfilerOverhead | None = None  # set when the layer breakdown was taken
    quantization: dict[str, Any] | None = None  # the artifact's quantization statement

    def to_dict(self) -> dict[str, Any]:
        return {
            "runner": self.runner,
            "artifact": self.artifact,
            "latency_ms": self.latency_ms.to_dict(),
            "samples_ms": list(self.samples_ms),
            "cpu_ms": self.cpu_ms.to_dict() if self.cpu_ms else None,
            "warmup_iters": self.warmup_iters,
            "warmup_steady": self.warmup_steady,
            "load_ms": self.load_ms,
            "peak_memory_mb": self.peak_memory_mb,
            "memory_source": self.memory_source,
            "target_met": self.target_met,
            "stop_reason": self.stop_reason,
            "ci_halfwidth": self.ci_halfwidth,
            "device": self.device,
            "settings": self.settings,
            "host_load": self.host_load,
            "layers": self.layers,
            "notes": self.notes,
            "conditions": self.conditions,
            "windows": self.windows,
            "profiler_overhead": (
                self.profiler_overhead.to_dict() if self.profiler_overhead else None
            ),
            **({"quantization": self.quantization} if self.quantization else {}),
        }

    def record(self) -> MeasurementRecord:
        """The validated record of this measurement (what every path stores): its statistics
        from every sample, at most ``MAX_STORED_SAMPLES`` of them kept (``stored_samples``)."""
        return MeasurementRecord.model_validate(
            {**self.to_dict(), "samples_ms": stored_samples(self.samples_ms)}
        )


@dataclass(frozen=True)
class ProfilerOverhead:
    """The layer breakdown is taken with the runtime's profiler on, which slows every run; the
    plain median beside it says by how much, and whether the layer times add up to the latency."""

    plain_median_ms: float  # the measurement without profiling
    profiled_median_ms: float  # median whole-run time with the profiler on
    layer_sum_ms: float  # per-layer times summed, per run

    def to_dict(self) -> dict[str, float]:
        return {
            "plain_median_ms": self.plain_median_ms,
            "profiled_median_ms": self.profiled_median_ms,
            "layer_sum_ms": self.layer_sum_ms,
            "overhead": self.profiled_median_ms / self.plain_median_ms - 1,
            "layer_sum_over_plain": self.layer_sum_ms / self.plain_median_ms,
        }


@dataclass
class Comparison:
    """Latency ratio B/A. ``ci95`` is built across ``reloads`` fresh session pairs, so it includes
    the session-to-session variance that samples of a single pair cannot show."""

    runner: str
    a: Summary
    b: Summary
    estimate: RatioEstimate
    cpu_estimate: RatioEstimate | None  # same estimator on thread CPU time (single-thread CPU)
    samples_a: tuple[float, ...]
    samples_b: tuple[float, ...]
    load_ms: tuple[float, float]  # mean session load time of A and of B
    device: dict[str, Any]
    settings: dict[str, Any]
    host_load: dict[str, float]
    order: str = "ABBA"
    notes: list[str] = field(default_factory=list)
    conditions: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None  # side ("a", "b") -> its artifact's statement

    @property
    def ratio(self) -> float:
        return self.estimate.ratio

    @property
    def ci95(self) -> tuple[float, float]:
        return self.estimate.ci95

    def to_dict(self) -> dict[str, Any]:
        return {
            "runner": self.runner,
            "ratio": self.estimate.ratio,
            "ci95": list(self.estimate.ci95),
            "reloads": self.estimate.n,
            "per_reload_ratios": list(self.estimate.estimates),
            "cpu_ratio": _ratio_dict(self.cpu_estimate) if self.cpu_estimate else None,
            "n": min(self.a.n, self.b.n),
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "samples_a": list(self.samples_a),
            "samples_b": list(self.samples_b),
            "load_ms": list(self.load_ms),
            "order": self.order,
            "device": self.device,
            "settings": self.settings,
            "host_load": self.host_load,
            "notes": self.notes,
            "conditions": self.conditions,
            **({"quantization": self.quantization} if self.quantization else {}),
        }

    def record(self) -> ComparisonRecord:
        """The validated record of this comparison (what every path stores), samples bounded
        as a measurement's."""
        bounded = {"samples_a": stored_samples(self.samples_a),
                   "samples_b": stored_samples(self.samples_b)}  # fmt: skip
        return ComparisonRecord.model_validate({**self.to_dict(), **bounded})


def _ratio_dict(estimate: RatioEstimate) -> dict[str, Any]:
    return {
        "ratio": estimate.ratio,
        "ci95": list(estimate.ci95),
        "per_reload_ratios": list(estimate.estimates),
    }
