"""The measurement protocol shared by every runner: warm-up until steady, adaptive sampling until
the median is known to the requested precision, and ABBA interleaving for A/B comparisons.

A runner supplies ``run``: one inference on a fresh input, returning its latency in milliseconds
as the runtime's clock saw it (after device synchronisation where there is a device). Everything
here is runtime-agnostic and deterministic given ``run`` and ``clock``, which is how it is tested.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from devices.stats import median_ci_halfwidth

Run = Callable[[], float]
Clock = Callable[[], float]
Progress = Callable[[int, float], None]  # (samples so far, current relative CI half-width)


@dataclass(frozen=True)
class WarmupPolicy:
    window: int = 5  # runs per window; steady = two consecutive window medians agree
    tolerance: float = 0.03  # relative difference of consecutive window medians
    min_iters: int = 10
    max_iters: int = 300
    max_seconds: float = 15.0


@dataclass(frozen=True)
class StopPolicy:
    target: float = 0.01  # relative half-width of the 95% CI of the median
    min_iters: int = 20
    max_iters: int = 1000
    max_seconds: float = 30.0
    check_every: int = 10


@dataclass(frozen=True)
class WarmupResult:
    iterations: int
    steady: bool
    samples: tuple[float, ...]


@dataclass(frozen=True)
class SampleResult:
    samples: tuple[float, ...]
    target_met: bool
    stop_reason: str  # "target", "max_iters" or "max_seconds"
    ci_halfwidth: float


def warm_up(run: Run, policy: WarmupPolicy, clock: Clock = time.perf_counter) -> WarmupResult:
    """Run until two consecutive windows have medians within ``tolerance`` (caches, allocator
    arenas, frequency scaling and lazy kernel selection settle at model-dependent speeds, so a
    fixed count is either wasteful or too short)."""
    start = clock()
    seen: list[float] = []
    previous: float | None = None
    while len(seen) < policy.max_iters and clock() - start < policy.max_seconds:
        window = [run() for _ in range(policy.window)]
        seen.extend(window)
        current = float(np.median(window))
        if (
            previous is not None
            and len(seen) >= policy.min_iters
            and abs(current - previous) <= policy.tolerance * previous
        ):
            return WarmupResult(len(seen), True, tuple(seen))
        previous = current
    return WarmupResult(len(seen), False, tuple(seen))


def sample_until_precise(
    run: Run,
    policy: StopPolicy,
    clock: Clock = time.perf_counter,
    progress: Progress | None = None,
) -> SampleResult:
    """Sample until the 95% CI of the median is within ±``target`` of it, or a cap is hit."""
    start = clock()
    samples: list[float] = []
    halfwidth = float("inf")
    while True:
        samples.extend(run() for _ in range(policy.check_every))
        if len(samples) >= policy.min_iters:
            halfwidth = median_ci_halfwidth(samples)
        if progress is not None:
            progress(len(samples), halfwidth)
        if len(samples) >= policy.min_iters and halfwidth <= policy.target:
            return SampleResult(tuple(samples), True, "target", halfwidth)
        if len(samples) >= policy.max_iters:
            return SampleResult(tuple(samples), False, "max_iters", halfwidth)
        if clock() - start >= policy.max_seconds:
            return SampleResult(tuple(samples), False, "max_seconds", halfwidth)


@dataclass(frozen=True)
class Window:
    start_s: float  # seconds since sampling began
    samples: tuple[float, ...]


def sample_for(
    run: Run, seconds: float, window_s: float, clock: Clock = time.perf_counter
) -> list[Window]:
    """Sustained mode: run back to back for ``seconds``, cut into windows of ``window_s``, so a
    clock that drops as the device heats shows as a trend across windows instead of a wider
    spread around one median."""
    start = clock()
    windows: list[Window] = []
    while (now := clock() - start) < seconds:
        begun, samples = now, []
        while clock() - start - begun < window_s and clock() - start < seconds:
            samples.append(run())
        if samples:
            windows.append(Window(begun, tuple(samples)))
    return windows


def abba_order(blocks: int, first: str = "A") -> list[str]:
    """A B B A repeated: each side runs first and last equally often, so a linear drift (thermal,
    background load ramping) biases neither side."""
    if first not in {"A", "B"}:
        raise ValueError("first must be 'A' or 'B'")
    second = "B" if first == "A" else "A"
    return [first, second, second, first] * blocks


def interleave(
    run_a: Run, run_b: Run, blocks: int, first: str = "A"
) -> tuple[list[float], list[float]]:
    """Run A and B in ABBA order; returns the A samples and the B samples."""
    runs = {"A": run_a, "B": run_b}
    out: dict[str, list[float]] = {"A": [], "B": []}
    for side in abba_order(blocks, first):
        out[side].append(runs[side]())
    return out["A"], out["B"]


def with_thread_cpu_time(run: Callable[[], float]) -> tuple[Callable[[], float], list[float]]:
    """Wrap ``run`` to also collect the calling thread's CPU time per run, in ms. With one
    intra-op thread ORT and PyTorch compute on the calling thread, so this is the compute time
    without the time spent waiting for a core: on a shared host it stays steady when latency
    does not (it still includes cache and memory-bandwidth effects of the neighbours)."""
    cpu: list[float] = []

    def timed() -> float:
        start = time.thread_time_ns()
        wall = run()
        cpu.append((time.thread_time_ns() - start) / 1e6)
        return wall

    return timed, cpu
