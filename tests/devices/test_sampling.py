from itertools import count

import numpy as np
import pytest

from devices.sampling import (
    StopPolicy,
    WarmupPolicy,
    abba_order,
    interleave,
    sample_until_precise,
    warm_up,
)
from devices.stats import median_ci_halfwidth


def _series(values):
    it = iter(values)
    return lambda: next(it)


def _fake_clock(step: float):
    ticks = count()
    return lambda: next(ticks) * step


def test_warm_up_stops_once_consecutive_windows_agree():
    # x_i = 1 + 5*0.7^i; window medians agree within 3% first for windows 3 and 4 (i = 17 vs 22)
    run = _series(1 + 5 * 0.7**i for i in range(1000))
    result = warm_up(
        run, WarmupPolicy(window=5, tolerance=0.03, min_iters=10), clock=_fake_clock(0)
    )
    assert result.steady and result.iterations == 25


def test_warm_up_gives_up_at_the_cap_when_never_steady():
    run = _series(1.0 * 1.1**i for i in range(1000))  # keeps getting slower by 10% per run
    result = warm_up(run, WarmupPolicy(max_iters=40), clock=_fake_clock(0))
    assert not result.steady and result.iterations == 40


def test_adaptive_stop_meets_the_target_on_quiet_samples():
    rng = np.random.default_rng(0)
    run = _series(rng.lognormal(0, 0.02, 10_000))
    result = sample_until_precise(run, StopPolicy(target=0.01, min_iters=20), clock=_fake_clock(0))
    assert result.target_met and result.stop_reason == "target"
    assert median_ci_halfwidth(result.samples) <= 0.01
    # it stopped at the first check that met the target, not later
    assert median_ci_halfwidth(result.samples[:-10]) > 0.01 or len(result.samples) == 20


def test_adaptive_stop_samples_longer_when_noisier():
    rng = np.random.default_rng(0)
    quiet = sample_until_precise(
        _series(rng.lognormal(0, 0.02, 10_000)), StopPolicy(), _fake_clock(0)
    )
    noisy = sample_until_precise(
        _series(rng.lognormal(0, 0.10, 10_000)), StopPolicy(), _fake_clock(0)
    )
    assert noisy.target_met and len(noisy.samples) > 3 * len(quiet.samples)


def test_adaptive_stop_caps():
    rng = np.random.default_rng(0)
    capped = sample_until_precise(
        _series(rng.lognormal(0, 0.5, 10_000)), StopPolicy(max_iters=100), clock=_fake_clock(0)
    )
    assert (
        not capped.target_met and capped.stop_reason == "max_iters" and len(capped.samples) == 100
    )
    timed = sample_until_precise(
        _series(rng.lognormal(0, 0.5, 10_000)), StopPolicy(max_seconds=5.0), clock=_fake_clock(1.0)
    )
    assert timed.stop_reason == "max_seconds" and len(timed.samples) == 50


def test_abba_order():
    assert "".join(abba_order(2)) == "ABBAABBA"
    assert "".join(abba_order(2, first="B")) == "BAABBAAB"
    with pytest.raises(ValueError):
        abba_order(1, first="C")


def test_interleave_runs_sides_in_abba_order():
    calls: list[str] = []
    a, b = interleave(lambda: calls.append("A") or 1.0, lambda: calls.append("B") or 2.0, blocks=3)
    assert "".join(calls) == "ABBA" * 3
    assert a == [1.0] * 6 and b == [2.0] * 6
