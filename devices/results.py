"""What a runner returns: a Measurement of one artifact, or a Comparison of two (A/B mode)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devices.stats import RatioEstimate, Summary


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
        }


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
        }


def _ratio_dict(estimate: RatioEstimate) -> dict[str, Any]:
    return {
        "ratio": estimate.ratio,
        "ci95": list(estimate.ci95),
        "per_reload_ratios": list(estimate.estimates),
    }
