"""Runner base class, the device description, and the runner registry.

A runner turns an artifact into a Measurement on one kind of device. Adding one is one module
(listed in ``RUNNER_MODULES``) and one ``@register_runner``; the registry imports runner modules
lazily and a runner module never imports its runtime at import time, so listing runners on a host
without torch or coremltools works and says why those runners are unavailable.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from devices.conditions import conditions, int8_note, snapshot
from devices.host import HostLoadMonitor, default_threads, host_facts, rss_mb
from devices.results import Comparison, Measurement, ProfilerOverhead, declared_quantization
from devices.sampling import (
    SampleResult,
    interleave,
    sample_for,
    sample_until_precise,
    warm_up,
    with_thread_cpu_time,
)
from devices.settings import MeasureSettings, ab_isolated, parse_settings
from devices.stats import median_ci_halfwidth, paired_ratio, ratio_ci, summarize
from exporters.errors import RunnerError, RunnerUnavailableError, SpecError
from exporters.formats import DeviceClass, ExportFormat

RUNNER_MODULES = ("devices.ort", "devices.torch_runner", "devices.coreml")
CPU_CLASSES = (DeviceClass.CPU_X86_64, DeviceClass.CPU_ARM64)
ALIASES = {"cpu": "ort-cpu", "cuda": "ort-cuda", "gpu": "ort-cuda", "coreml": "coreml-mac"}


@dataclass(frozen=True)
class DeviceInfo:
    """What a number was measured on; stored beside every result."""

    device_class: str
    runner: str
    label: str  # human description, e.g. "Apple M1 Mac (stand-in for iPhone 12)"
    cpu_model: str
    cores_physical: int
    cores_logical: int
    threads: int | None
    os: str
    arch: str
    host_name: str
    runtime: str
    runtime_version: str
    execution_provider: str | None = None
    gpu_name: str | None = None
    gpu_driver: str | None = None
    compute_units: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Session(ABC):
    """One loaded artifact, ready to run on a rotating pool of random inputs."""

    load_ms: float = 0.0
    options: dict[str, Any]  # the effective session/runtime options, recorded with the result

    @abstractmethod
    def run(self) -> float:
        """One inference on the next input buffer; its latency in ms (device synchronised)."""

    def peak_memory_mb(self) -> float | None:
        """Peak memory as the runtime reports it (device allocators); None: not available."""
        return None

    def metadata(self) -> dict[str, str]:
        """The artifact's own key/value metadata (a quantized form's statement is there)."""
        return {}

    def close(self) -> None:
        """Release the runtime's resources."""


Progress = Callable[[str, int, float], None]  # (phase, samples so far, CI half-width or progress)


class Runner(ABC):
    name: ClassVar[str]
    device_class: ClassVar[DeviceClass]
    formats: ClassVar[tuple[ExportFormat, ...]]
    runtime: ClassVar[str]

    def __init__(self, **options: Any) -> None:
        self.options = options

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this runner cannot run on this host, or None when it can (must not be slow)."""
        return None

    @abstractmethod
    def runtime_facts(self, settings: MeasureSettings) -> dict[str, Any]:
        """runtime_version, execution_provider, gpu_name, ..., label: the runner-specific part."""

    @abstractmethod
    def open(self, artifact: Path, settings: MeasureSettings) -> Session:
        """Load ``artifact`` into a fresh session (raise RunnerError with the cause on failure)."""

    def layers(self, artifact: Path, settings: MeasureSettings | None = None) -> dict[str, Any]:
        raise RunnerError(f"runner {self.name!r} offers no per-layer breakdown")

    def describe(self, settings: MeasureSettings | None = None) -> DeviceInfo:
        settings = parse_settings(settings)
        facts = {
            **host_facts(),
            "threads": settings.threads,
            "label": "",
            **self.runtime_facts(settings),
        }
        return DeviceInfo(
            device_class=self.device_class.value, runner=self.name, runtime=self.runtime, **facts
        )

    def check_artifact(self, artifact: Path) -> Path:
        artifact = Path(artifact)
        if not artifact.exists():
            raise RunnerError(f"artifact {artifact.name!r} does not exist")
        if not any(artifact.name.endswith(fmt.suffix) for fmt in self.formats):
            runs = ", ".join(fmt.suffix for fmt in self.formats)
            raise RunnerError(f"runner {self.name!r} runs {runs} artifacts, not {artifact.name!r}")
        return artifact

    def measure(
        self,
        artifact_path: Path,
        settings: MeasureSettings | None = None,
        progress: Progress | None = None,
        *,
        layers: bool = False,
    ) -> Measurement:
        """Warm up, then sample until precise (or for ``sustained_seconds``, in windows). With
        ``layers`` the per-layer breakdown is taken after the plain measurement, and both are
        reported with the profiler's overhead."""
        settings = parse_settings(settings)
        artifact = self.check_artifact(artifact_path)
        rss_before = rss_mb()
        peak_rss = [rss_before]

        def hook(n: int, halfwidth: float) -> None:
            peak_rss.append(rss_mb())
            if progress is not None:
                progress("measure", n, halfwidth)

        before = snapshot()
        with HostLoadMonitor() as load:
            session = self.open(artifact, settings)
            quantization = declared_quantization(session.metadata())
            run, cpu_times = with_thread_cpu_time(session.run)
            try:
                warm = warm_up(run, settings.warmup_policy())
                cpu_times.clear()
                result, windows = _sample(run, settings, hook)
                runtime_peak = session.peak_memory_mb()
            finally:
                session.close()
        peak, source = (
            (runtime_peak, "runtime")
            if runtime_peak is not None
            else (max(peak_rss) - rss_before, "rss")
        )
        measurement = Measurement(
            runner=self.name,
            artifact=artifact.name,
            latency_ms=summarize(result.samples),
            samples_ms=result.samples,
            cpu_ms=summarize(cpu_times) if self.single_cpu_thread(settings) else None,
            warmup_iters=warm.iterations,
            warmup_steady=warm.steady,
            load_ms=session.load_ms,
            peak_memory_mb=round(peak, 2),
            memory_source=source,
            target_met=result.target_met,
            stop_reason=result.stop_reason,
            ci_halfwidth=result.ci_halfwidth,
            device=self.describe(settings).to_dict(),
            settings={**settings.model_dump(), **session.options},
            host_load=load.result.to_dict(),
            notes=_notes(warm.steady, result.target_met, load.result.busy_note()),
            conditions=conditions(before, snapshot()),
            windows=windows,
            quantization=quantization,
        )
        self._note_int8(measurement.notes, measurement.conditions, quantization)
        if layers:
            self._attach_layers(measurement, artifact, settings)
        return measurement

    def _attach_layers(
        self, measurement: Measurement, artifact: Path, settings: MeasureSettings
    ) -> None:
        breakdown = self.layers(artifact, settings)
        measurement.layers = breakdown
        measurement.profiler_overhead = ProfilerOverhead(
            plain_median_ms=measurement.latency_ms.median,
            profiled_median_ms=breakdown["run_ms_median"],
            layer_sum_ms=breakdown["total_ms"],
        )

    def _note_int8(self, notes: list[str], taken: dict[str, Any] | None, declared: Any) -> None:
        """A quantized artifact measured on a CPU without int8 dot products says so."""
        if declared is not None and self.device_class in CPU_CLASSES and taken:
            note = int8_note(taken.get("int8_capability") or {})
            notes.extend([note] if note else [])

    def single_cpu_thread(self, settings: MeasureSettings) -> bool:
        """One intra-op thread on a CPU runner: the calling thread's CPU time is compute time."""
        return self.device_class in CPU_CLASSES and (settings.threads or default_threads()) == 1

    def compare(
        self,
        a: Path,
        b: Path,
        settings: MeasureSettings | None = None,
        progress: Progress | None = None,
    ) -> Comparison:
        """B/A ratio: ``ab_reloads`` fresh session pairs (load order alternating), each warmed up
        and run in ABBA blocks; each pair gives one estimate (median of block ratios) and the CI
        is built across pairs, because two sessions of one model differ by ~1% from one load to
        the next. Single-thread CPU comparisons also get the same estimate on thread CPU time.
        Spinning is off unless set (``ab_isolated``): idle workers of one session would
        busy-wait on the cores the other is running on."""
        settings = ab_isolated(parse_settings(settings))
        paths = {"A": self.check_artifact(a), "B": self.check_artifact(b)}
        pairs: list[_Pair] = []
        before = snapshot()
        with HostLoadMonitor() as load:
            for reload in range(settings.ab_reloads):
                pairs.append(self._run_pair(paths, settings, first="A" if reload % 2 == 0 else "B"))
                if progress is not None:
                    progress("compare", reload + 1, settings.ab_reloads)
        samples_a = tuple(x for pair in pairs for x in pair.wall["A"])
        samples_b = tuple(x for pair in pairs for x in pair.wall["B"])
        cpu = ratio_ci([paired_ratio(p.cpu["A"], p.cpu["B"]) for p in pairs])
        comparison = Comparison(
            runner=self.name,
            a=summarize(samples_a),
            b=summarize(samples_b),
            estimate=ratio_ci([paired_ratio(p.wall["A"], p.wall["B"]) for p in pairs]),
            cpu_estimate=cpu if self.single_cpu_thread(settings) else None,
            samples_a=samples_a,
            samples_b=samples_b,
            load_ms=(
                float(np.mean([p.load_ms["A"] for p in pairs])),
                float(np.mean([p.load_ms["B"] for p in pairs])),
            ),
            device=self.describe(settings).to_dict(),
            settings={**settings.model_dump(), **pairs[-1].options},
            host_load=load.result.to_dict(),
            notes=[note for note in [load.result.busy_note()] if note],
            conditions=conditions(before, snapshot()),
            quantization={k: v for k, v in pairs[-1].quantization.items() if v} or None,
        )
        self._note_int8(comparison.notes, comparison.conditions, comparison.quantization)
        return comparison

    def _run_pair(self, paths: dict[str, Path], settings: MeasureSettings, first: str) -> _Pair:
        order = [first, "B" if first == "A" else "A"]
        sessions: dict[str, Session] = {}
        try:
            for side in order:  # inside the try: a failed second load still closes the first
                sessions[side] = self.open(paths[side], settings)
            declared = {s.lower(): declared_quantization(sessions[s].metadata()) for s in "AB"}
            for side in order:
                warm_up(sessions[side].run, settings.warmup_policy())
            (run_a, cpu_a), (run_b, cpu_b) = (with_thread_cpu_time(sessions[s].run) for s in "AB")
            wall_a, wall_b = interleave(run_a, run_b, settings.ab_blocks, first)
        finally:
            for session in sessions.values():
                session.close()
        return _Pair(
            wall={"A": wall_a, "B": wall_b},
            cpu={"A": cpu_a, "B": cpu_b},
            load_ms={side: sessions[side].load_ms for side in "AB"},
            options=sessions["A"].options,
            quantization=declared,
        )


@dataclass
class _Pair:
    """One freshly loaded A/B session pair's interleaved samples."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]
    load_ms: dict[str, float]
    options: dict[str, Any]
    quantization: dict[str, dict[str, Any] | None]  # "a", "b": each artifact's statement


def _sample(
    run: Callable[[], float], settings: MeasureSettings, hook: Callable[[int, float], None]
) -> tuple[SampleResult, list[dict[str, Any]] | None]:
    """Adaptive sampling, or sustained mode: every sample over a fixed time, plus the median of
    each window (its trend is the throttling)."""
    if settings.sustained_seconds is None:
        return sample_until_precise(run, settings.stop_policy(), progress=hook), None
    windows = sample_for(run, settings.sustained_seconds, settings.window_seconds)
    samples = tuple(x for window in windows for x in window.samples)
    halfwidth = median_ci_halfwidth(samples) if len(samples) >= 2 else float("inf")
    hook(len(samples), halfwidth)
    rows = [
        {
            "start_s": round(w.start_s, 3),
            "n": len(w.samples),
            "median_ms": float(np.median(w.samples)),
        }
        for w in windows
    ]
    return SampleResult(samples, halfwidth <= settings.target_rel_ci, "sustained", halfwidth), rows


def _notes(steady: bool, target_met: bool, busy: str | None) -> list[str]:
    notes = [] if steady else ["warm-up hit its cap before two windows agreed within 3%"]
    if not target_met:
        notes.append(
            "the 95% CI of the median is wider than the precision target (a cap, or the end of a "
            "sustained run, stopped sampling)"
        )
    return notes + ([busy] if busy else [])


_RUNNERS: dict[str, type[Runner]] = {}


def register_runner(cls: type[Runner]) -> type[Runner]:
    if cls.name in _RUNNERS:
        raise ValueError(f"a runner named {cls.name!r} is already registered")
    _RUNNERS[cls.name] = cls
    return cls


def _load_runner_modules() -> None:
    for module in RUNNER_MODULES:
        importlib.import_module(module)


def list_runners(*, available_only: bool = False) -> list[str]:
    _load_runner_modules()
    return sorted(
        name
        for name, cls in _RUNNERS.items()
        if not available_only or cls.unavailable_reason() is None
    )


def runners_for(device_class: DeviceClass | str) -> list[str]:
    wanted = DeviceClass(device_class)
    _load_runner_modules()
    return sorted(name for name, cls in _RUNNERS.items() if cls.device_class is wanted)


def runner_class(name: str) -> type[Runner]:
    _load_runner_modules()
    name = ALIASES.get(name, name)
    if name not in _RUNNERS:
        known = ", ".join(sorted(_RUNNERS) + sorted(ALIASES))
        raise SpecError(f"unknown runner {name!r}; known: {known}", field="device")
    return _RUNNERS[name]


def get_runner(name: str, **options: Any) -> Runner:
    """Instantiate a runner by name (or alias: cpu, cuda, gpu, coreml); raises
    RunnerUnavailableError, with the reason, when it cannot run on this host."""
    cls = runner_class(name)
    reason = cls.unavailable_reason()
    if reason is not None:
        raise RunnerUnavailableError(f"runner {cls.name!r} cannot run on this host: {reason}")
    return cls(**options)
