"""One gate run: every (model, device) pair compared, decided at the family-wise level, and the
inconclusive ones sampled more (more fresh session pairs) up to a stated budget first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devices.settings import MeasureSettings
from exporters.formats import DeviceClass
from exporters.sources import Sourced
from service.gate import (
    Decision,
    Verdict,
    decide_on,
    pair_confidence,
    percent,
    ratio_interval,
    run_verdict,
)
from service.gate.compare import PairComparison, Remote, compare

Compare = Callable[..., PairComparison]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Pair:
    """What one pair gates: the model's two builds on one device class, at its threshold."""

    model: str
    device: DeviceClass
    baseline: Sourced
    candidate: Sourced
    threshold: float


@dataclass(frozen=True)
class Budget:
    """Session pairs per comparison round, at most per pair (the first round included), and at
    least behind a regression: one round that looks slower is confirmed by a fresh one pooled
    with it before a build fails (on a saturated host one A/A round in 50 looked 5% slower)."""

    step: int = 6
    max_reloads: int = 24
    confirm: int = 12

    def settled(self, decision: Decision, reloads: int) -> bool:
        """No more rounds: the budget is spent, or the decision stands on enough pairs."""
        if reloads >= self.max_reloads:
            return True
        if decision.verdict is Verdict.REGRESSION:
            return reloads >= self.confirm
        return decision.settled


@dataclass
class PairOutcome:
    pair: Pair
    comparison: PairComparison
    decision: Decision
    reloads_needed: int | None = None  # inconclusive at the budget: about how many would decide

    def to_dict(self, metric: str) -> dict[str, Any]:
        base, cand = self.comparison.baseline, self.comparison.candidate
        return {
            "model": self.pair.model,
            "device": self.pair.device.value,
            "runner": self.comparison.runner,
            "verdict": self.decision.verdict.name.lower(),
            "metric": metric,
            "threshold": self.pair.threshold,
            "ratio": self.decision.ratio,
            "ci": list(self.decision.ci95),
            "confidence": self.decision.confidence,
            "reloads": self.comparison.reloads,
            "reloads_needed": self.reloads_needed,
            "baseline": {**self.pair.baseline.to_dict(), "median_ms": base.median,
                         "ci95_ms": list(base.ci95)},
            "candidate": {**self.pair.candidate.to_dict(), "median_ms": cand.median,
                          "ci95_ms": list(cand.ci95)},
            "host_load": self.comparison.host_load,
            "notes": list(self.comparison.notes),
            "jobs": list(self.comparison.jobs),
        }  # fmt: skip


@dataclass
class GateOutcome:
    metric: str
    confidence: float
    budget: Budget
    pairs: list[PairOutcome] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        """Any regression fails; else any inconclusive pair is inconclusive; else pass."""
        return run_verdict([p.decision.verdict for p in self.pairs])

    @property
    def rule(self) -> str:
        return (
            f"regression: {self.metric} ratio candidate/baseline above 1 + threshold and its "
            f"{percent(self.confidence)} CI above 1 (Bonferroni over {len(self.pairs)} pair(s): "
            "family-wise false-failure rate at most 2.5%); inconclusive pairs, and passes whose CI "
            f"reaches 1 + 2 x threshold, sampled up to {self.budget.max_reloads} session pairs; "
            f"a regression stands on at least {self.budget.confirm}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.name.lower(),
            "exit_code": int(self.verdict),
            "rule": self.rule,
            "pairs": [p.to_dict(self.metric) for p in self.pairs],
        }


def run_gate(
    pairs: list[Pair],
    *,
    settings: MeasureSettings,
    metric: str = "wall",
    budget: Budget = Budget(),
    server: Remote | None = None,
    compare_fn: Compare = compare,
    progress: Progress | None = None,
) -> GateOutcome:
    confidence = pair_confidence(len(pairs))
    outcome = GateOutcome(metric, confidence, budget)
    round_settings = settings.model_copy(update={"ab_reloads": budget.step})
    for pair in pairs:
        if progress is not None:
            progress(f"comparing {pair.model} on {pair.device.value}")
        comparison = compare_fn(
            pair.baseline.artifact, pair.candidate.artifact, pair.device, round_settings,
            server=server,
        )  # fmt: skip
        decision = _decide(comparison, metric, pair.threshold, confidence)
        while not budget.settled(decision, comparison.reloads):
            step = min(budget.step, budget.max_reloads - comparison.reloads)
            if progress is not None:
                progress(f"not settled: {step} more session pairs for {pair.model}")
            more = compare_fn(
                pair.baseline.artifact, pair.candidate.artifact, pair.device,
                settings.model_copy(update={"ab_reloads": max(2, step)}), server=server,
                force=True,  # a server would answer the same request with its stored round
            )  # fmt: skip
            comparison = comparison.merged(more)
            decision = _decide(comparison, metric, pair.threshold, confidence)
        needed = None
        if decision.verdict is Verdict.INCONCLUSIVE:
            interval = ratio_interval(comparison.estimates(metric), confidence)
            needed = interval.reloads_needed(pair.threshold)
        outcome.pairs.append(PairOutcome(pair, comparison, decision, needed))
    return outcome


def _decide(
    comparison: PairComparison, metric: str, threshold: float, confidence: float
) -> Decision:
    return decide_on(comparison.estimates(metric), threshold, confidence)
