"""Pure statistics of latency samples (numpy only, no scipy: a device host installs neither).

Latency distributions are skewed with a long right tail (preemption, page faults), so the centre
we report is the median and its uncertainty is the distribution-free order-statistic interval, not
a normal-theory one. Ratios (A/B mode) are handled on the log scale, where they are additive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

Z95 = 1.959963984540054
# Two-sided 95% Student t quantiles for 1..30 degrees of freedom; beyond, a series exact to 1e-3.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    """Upper 97.5% point of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("t quantile needs at least one degree of freedom")
    if df <= len(_T975):
        return _T975[df - 1]
    z = Z95  # Cornish-Fisher expansion of t around the normal quantile
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based ranks (lo, hi) of the sorted sample bracketing the median with >= ``confidence``.

    The number of samples below the true median is Binomial(n, 1/2) whatever the distribution,
    so [x_(k), x_(n-1-k)] (0-based) covers it with probability 1 - 2*P(X <= k): exact and
    conservative; the widest k still meeting ``confidence`` is taken (n=100 gives ranks 39, 60).
    """
    if n < 1:
        raise ValueError("no samples")
    alpha = 1.0 - confidence
    # One pass over the Binomial(n, 1/2) pmf, P(X=k+1) = P(X=k) (n-k)/(k+1), in log space: linear
    # in the rank (a sustained run has tens of thousands of samples). Terms below float range
    # underflow to 0, far below any alpha.
    log_pmf = n * math.log(0.5)
    cdf = math.exp(log_pmf)  # P(X <= k)
    k = 0
    while k + 1 <= (n - 1) // 2:
        log_pmf += math.log((n - k) / (k + 1))
        wider = cdf + math.exp(log_pmf)  # P(X <= k + 1)
        if 2 * wider > alpha:
            break
        cdf, k = wider, k + 1
    return k, n - 1 - k


def median_ci(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median."""
    ordered = np.sort(np.asarray(samples, dtype=np.float64))
    lo, hi = median_ci_ranks(len(ordered), confidence)
    return float(ordered[lo]), float(ordered[hi])


def median_ci_halfwidth(samples: Sequence[float]) -> float:
    """Half-width of the 95% CI of the median relative to the median (the adaptive-stop criterion)."""
    lo, hi = median_ci(samples)
    centre = float(np.median(samples))
    return (hi - lo) / 2 / centre if centre > 0 else math.inf


@dataclass(frozen=True)
class Summary:
    """What a latency report states (milliseconds, except ``cv`` which is a fraction)."""

    median: float
    mean: float
    min: float
    max: float
    p90: float
    p99: float
    std: float
    iqr: float
    cv: float
    ci95: tuple[float, float]
    n: int

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["ci95"] = list(self.ci95)
        return data


def summarize(samples: Sequence[float]) -> Summary:
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no samples to summarize")
    q25, median, q75, p90, p99 = np.quantile(values, [0.25, 0.5, 0.75, 0.9, 0.99])
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return Summary(
        median=float(median),
        mean=mean,
        min=float(values.min()),
        max=float(values.max()),
        p90=float(p90),
        p99=float(p99),
        std=std,
        iqr=float(q75 - q25),
        cv=std / mean if mean > 0 else 0.0,
        ci95=median_ci(values),
        n=int(values.size),
    )


@dataclass(frozen=True)
class RatioEstimate:
    """B/A latency ratio: geometric mean of independent per-session estimates, t-interval on logs."""

    ratio: float
    ci95: tuple[float, float]
    n: int  # number of independent estimates (sessions) the interval is built from
    estimates: tuple[float, ...]

    def excludes_one(self) -> bool:
        return not self.ci95[0] <= 1.0 <= self.ci95[1]


def ratio_ci(estimates: Sequence[float]) -> RatioEstimate:
    """CI of a ratio from independent estimates of it (one per pair of freshly loaded sessions).

    Each estimate already averages many interleaved runs; what varies between them is the
    session-to-session effect (memory placement, thread pinning), which samples of one session
    cannot see. Treating the per-session log ratios as the i.i.d. observations makes the interval
    reflect that variance; with a single estimate no interval can be stated (it is infinite).
    """
    values = np.asarray(estimates, dtype=np.float64)
    if values.size == 0 or not np.all((values > 0) & np.isfinite(values)):
        raise ValueError("ratio estimates must be positive and finite")
    logs = np.log(values)
    centre = float(logs.mean())
    if logs.size == 1:
        return RatioEstimate(math.exp(centre), (0.0, math.inf), 1, tuple(map(float, estimates)))
    half = t975(logs.size - 1) * float(logs.std(ddof=1)) / math.sqrt(logs.size)
    return RatioEstimate(
        ratio=math.exp(centre),
        ci95=(math.exp(centre - half), math.exp(centre + half)),
        n=int(logs.size),
        estimates=tuple(float(e) for e in estimates),
    )


def paired_ratio(a: Sequence[float], b: Sequence[float], per_block: int = 2) -> float:
    """B/A within one session pair from ABBA-interleaved samples: each block's B time over its A
    time (``per_block`` runs of each side per block), then the median of those block ratios.

    Pairing inside a block cancels load changes slower than a block; the median over blocks
    ignores the blocks in which a preemption hit only one side. (A ratio of the two medians does
    neither: on a shared host its per-session estimates scatter several times wider.)
    """
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.size != xb.size or xa.size < per_block or xa.size % per_block:
        raise ValueError("A and B need the same number of samples, whole blocks of each")
    block_a = xa.reshape(-1, per_block).sum(axis=1)
    block_b = xb.reshape(-1, per_block).sum(axis=1)
    return float(np.exp(np.median(np.log(block_b / block_a))))
