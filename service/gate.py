"""CI regression gate on an A/B comparison (``latbench compare --json``): the build fails only on a
real regression, B slower than A by more than the threshold AND the 95% CI of B/A excluding 1.
A ratio past the threshold whose CI still includes 1 is inconclusive (too noisy to decide), which
CI may retry rather than fail or pass."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from exporters.errors import SpecError


class Verdict(IntEnum):
    """Also the process exit code (2 is left to usage errors)."""

    PASS = 0
    REGRESSION = 1
    INCONCLUSIVE = 3


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    ratio: float
    ci95: tuple[float, float]
    threshold: float

    def explain(self) -> str:
        lo, hi = self.ci95
        limit = 1 + self.threshold
        head = f"B/A = {self.ratio:.4f} (95% CI [{lo:.4f}, {hi:.4f}]), limit {limit:.4f}: "
        return (
            head
            + {
                Verdict.PASS: "pass",
                Verdict.REGRESSION: "regression (slower beyond the threshold, CI excludes 1)",
                Verdict.INCONCLUSIVE: "inconclusive (slower beyond the threshold, CI includes 1)",
            }[self.verdict]
        )


def decide(ratio: float, ci95: tuple[float, float], threshold: float) -> Decision:
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
    return Decision(verdict, ratio, (lo, hi), threshold)


def decide_from_json(text: str, threshold: float, *, metric: str = "wall") -> Decision:
    """A ``latbench compare --json`` document (needs ``ratio`` and ``ci95``).

    ``metric="cpu"`` gates on the ratio of the computing thread's CPU time (``cpu_ratio``, single
    -thread CPU comparisons only): on a host that cannot be dedicated to the measurement it stays
    steady where wall-clock time does not."""
    if metric not in ("wall", "cpu"):
        raise SpecError("metric must be 'wall' or 'cpu'", field="metric")
    try:
        doc: Any = json.loads(text)
        if metric == "cpu":
            if not doc.get("cpu_ratio"):
                raise SpecError(
                    "this comparison has no cpu_ratio (only single-thread CPU runs do)",
                    field="metric",
                )
            doc = doc["cpu_ratio"]
        ratio, ci95 = float(doc["ratio"]), tuple(float(v) for v in doc["ci95"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SpecError(
            f"not a comparison document ({type(exc).__name__}: {exc}); "
            "write one with `latbench compare A B --json`",
            field="comparison",
        ) from exc
    if len(ci95) != 2:
        raise SpecError("ci95 must have two bounds", field="ci95")
    return decide(ratio, ci95, threshold)
