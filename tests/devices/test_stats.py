import math

import numpy as np
import pytest
from scipy import stats as sps

from devices.stats import median_ci, median_ci_ranks, paired_ratio, ratio_ci, summarize, t975


@pytest.mark.parametrize(("n", "ranks"), [(10, (1, 8)), (100, (39, 60)), (1000, (468, 531))])
def test_median_ci_ranks_match_binomial_tables(n, ranks):
    # textbook 95% ranks (1-based): n=10 -> 2..9, n=100 -> 40..61, n=1000 -> 469..532
    assert median_ci_ranks(n) == ranks


def test_median_ci_ranks_are_the_widest_meeting_95_percent():
    for n in (7, 30, 101, 500):
        k, _ = median_ci_ranks(n)
        coverage = 1 - 2 * sps.binom.cdf(k, n, 0.5)
        narrower = 1 - 2 * sps.binom.cdf(k + 1, n, 0.5)
        assert coverage >= 0.95 and narrower < 0.95


def test_median_ci_on_a_known_sample():
    assert median_ci(np.arange(1.0, 101.0)) == (40.0, 61.0)


def test_median_ci_covers_the_true_median_of_a_skewed_distribution():
    rng = np.random.default_rng(1)
    true_median = 1.0  # lognormal(0, 0.5) has median exp(0) = 1
    hits = sum(
        lo <= true_median <= hi
        for lo, hi in (median_ci(rng.lognormal(0, 0.5, 60)) for _ in range(2000))
    )
    assert 0.94 <= hits / 2000 <= 0.985


def test_t975_matches_student_t():
    for df in range(1, 200):
        assert t975(df) == pytest.approx(sps.t.ppf(0.975, df), abs=2e-3)


def test_summarize_known_answers():
    summary = summarize(np.arange(1.0, 101.0))
    assert summary.median == 50.5 and summary.mean == 50.5 and summary.min == 1.0
    assert summary.p90 == pytest.approx(90.1) and summary.p99 == pytest.approx(99.01)
    assert summary.iqr == pytest.approx(49.5)
    assert summary.std == pytest.approx(np.std(np.arange(1.0, 101.0), ddof=1))
    assert summary.cv == pytest.approx(summary.std / 50.5)
    assert summary.ci95 == (40.0, 61.0) and summary.n == 100


def test_ratio_ci_known_answer():
    estimate = ratio_ci([math.exp(-0.01), math.exp(0.01)])
    # logs -0.01, +0.01: mean 0, sd 0.01*sqrt(2), se 0.01, t(1) = 12.706
    assert estimate.ratio == pytest.approx(1.0)
    assert estimate.ci95[0] == pytest.approx(math.exp(-0.12706), rel=1e-6)
    assert estimate.ci95[1] == pytest.approx(math.exp(0.12706), rel=1e-6)
    assert not estimate.excludes_one()
    assert ratio_ci([1.1, 1.1, 1.1]).ci95 == pytest.approx((1.1, 1.1))
    assert ratio_ci([1.1, 1.1, 1.1]).excludes_one()


def test_ratio_ci_coverage_on_simulated_sessions():
    rng = np.random.default_rng(2)
    true_ratio = 1.09
    hits = 0
    for _ in range(2000):
        ci = ratio_ci(true_ratio * np.exp(rng.normal(0, 0.015, 5))).ci95
        hits += ci[0] <= true_ratio <= ci[1]
    assert 0.935 <= hits / 2000 <= 0.965


def test_ratio_ci_rejects_nonpositive_estimates():
    with pytest.raises(ValueError):
        ratio_ci([1.0, 0.0])
    assert math.isinf(ratio_ci([1.2]).ci95[1])


def test_paired_ratio_known_answer_and_robustness():
    a = [10.0, 10.0] * 10
    assert paired_ratio(a, [11.0, 11.0] * 10) == pytest.approx(1.1)
    # a preemption that hits one side of two blocks moves the estimate not at all
    b = [11.0, 11.0] * 10
    b[0], a[5] = 40.0, 40.0
    assert paired_ratio(a, b) == pytest.approx(1.1)
    # blocks are paired: a load ramp that slows both sides alike cancels
    ramp = [1 + i / 10 for i in range(20)]
    assert paired_ratio([10 * r for r in ramp], [12 * r for r in ramp]) == pytest.approx(1.2)
    with pytest.raises(ValueError):
        paired_ratio([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
