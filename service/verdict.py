"""The gate's decision rule, independent of where the comparison ran: the gate (``service.gate``,
client side) decides with it, and the server recomputes a posted gate run's verdicts with it
(``service.gate_rule``), so both read the same measurements the same way.

A pair (model, device) fails only on a real regression: candidate/baseline slower than the
threshold AND the confidence interval of the ratio excluding 1. A ratio past the threshold whose
interval still includes 1 is inconclusive (too noisy to decide): the gate samples more first,
as it does for a pass whose interval reaches past twice the threshold (a noisy round can put the
estimate of a real regression under the threshold).

With m pairs in one gate, each pair's interval is built at confidence 1 - 0.05/m (Bonferroni), so
the chance that *any* pair of an unchanged model fails is at most 2.5% (one-sided) whatever m is:
the family-wise false-failure rate is what a team feels, not the per-pair one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from exporters.errors import SpecError

FAMILY_ALPHA = 0.05  # two-sided; the false-failure side is half of it


class Verdict(IntEnum):
    """Also the process exit code (2 is left to usage errors)."""

    PASS = 0
    REGRESSION = 1
    INCONCLUSIVE = 3


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    ratio: float
    ci95: tuple[float, float]  # at ``confidence`` (0.95 for a single pair)
    threshold: float
    confidence: float = 0.95

    @property
    def settled(self) -> bool:
        """Worth no more sampling: a regression, or a pass whose interval rules out a slowdown of
        twice the threshold. A pass on a wide interval (a noisy round) hides what more session
        pairs would show, so the gate samples it more, as it does an inconclusive pair."""
        if self.verdict is Verdict.PASS:
            return self.ci95[1] <= 1 + 2 * self.threshold
        return self.verdict is Verdict.REGRESSION

    def explain(self) -> str:
        lo, hi = self.ci95
        limit = 1 + self.threshold
        level = percent(self.confidence)
        head = f"B/A = {self.ratio:.4f} ({level} CI [{lo:.4f}, {hi:.4f}]), limit {limit:.4f}: "
        return (
            head
            + {
                Verdict.PASS: "pass",
                Verdict.REGRESSION: "regression (slower beyond the threshold, CI excludes 1)",
                Verdict.INCONCLUSIVE: "inconclusive (slower beyond the threshold, CI includes 1)",
            }[self.verdict]
        )


def decide(
    ratio: float, ci95: tuple[float, float], threshold: float, confidence: float = 0.95
) -> Decision:
    if not 0 <= threshold < 10:
        raise SpecError("threshold must be in [0, 10), e.g. 0.05 for 5%", field="threshold")
    lo, hi = ci95
    if not 0 < lo <= ratio <= hi:
        raise SpecError(
            f"ci95 [{lo}, {hi}] must be positive and contain ratio {ratio}", field="ci95"
        )
    if ratio <= 1 + threshold:
        verdict = Verdict.PASS
    elif lo > 1:
        verdict = Verdict.REGRESSION
    else:
        verdict = Verdict.INCONCLUSIVE
    return Decision(verdict, ratio, (lo, hi), threshold, confidence)


def decide_on(estimates: Sequence[float], threshold: float, confidence: float) -> Decision:
    """The decision on per-session-pair ratio estimates: the gate's, and the server's check of a
    posted run (``service.gate_rule``)."""
    interval = ratio_interval(estimates, confidence)
    return decide(interval.ratio, interval.ci, threshold, confidence)


def run_verdict(verdicts: Sequence[Verdict]) -> Verdict:
    """Any regression fails the run; else any inconclusive pair makes it inconclusive."""
    for verdict in (Verdict.REGRESSION, Verdict.INCONCLUSIVE):
        if verdict in verdicts:
            return verdict
    return Verdict.PASS


def percent(fraction: float) -> str:
    """0.95 -> "95%", 0.9975 -> "99.75%"."""
    return f"{fraction * 100:.4f}".rstrip("0").rstrip(".") + "%"


def pair_confidence(pairs: int, alpha: float = FAMILY_ALPHA) -> float:
    """Bonferroni: each of ``pairs`` intervals at 1 - alpha/pairs keeps the family at 1 - alpha."""
    if pairs < 1:
        raise SpecError("a gate needs at least one (model, device) pair", field="models")
    return 1 - alpha / pairs


@dataclass(frozen=True)
class RatioInterval:
    """Geometric mean of per-session-pair ratios with a t-interval on their logs."""

    ratio: float
    ci: tuple[float, float]
    confidence: float
    n: int
    log_sd: float

    def reloads_needed(self, threshold: float) -> int | None:
        """About how many session pairs would put the interval's lower end above 1 at this
        scatter, for a ratio past the threshold; None when no number of pairs would."""
        effect = math.log(self.ratio)
        if self.ratio <= 1 + threshold or effect <= 0:
            return None
        if self.log_sd == 0:
            return self.n
        from scipy.stats import norm

        z = float(norm.ppf(1 - (1 - self.confidence) / 2))
        return max(self.n + 1, math.ceil((z * self.log_sd / effect) ** 2) + 2)


def ratio_interval(estimates: Sequence[float], confidence: float) -> RatioInterval:
    """The interval of ``devices.stats.ratio_ci`` at any confidence (scipy's t quantile: the
    Bonferroni levels go far beyond the table of 97.5% points a device host carries)."""
    from scipy.stats import t

    logs = np.log(np.asarray(estimates, dtype=np.float64))
    if logs.size < 2 or not np.all(np.isfinite(logs)):
        raise SpecError("a ratio interval needs two or more positive estimates", field="reloads")
    centre, sd = float(logs.mean()), float(logs.std(ddof=1))
    half = float(t.ppf(1 - (1 - confidence) / 2, logs.size - 1)) * sd / math.sqrt(logs.size)
    return RatioInterval(
        math.exp(centre),
        (math.exp(centre - half), math.exp(centre + half)),
        confidence,
        int(logs.size),
        sd,
    )
