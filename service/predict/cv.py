"""Cross-validation of a latency method: held-out cases inside and outside the training domain,
the intervals built from them, and the nested evaluation that says whether those intervals hold.

Variants of one family share blocks, so a random split lets a model "predict" repvit_m1_1 from
repvit_m1_0; holding out a whole family asks the real question (a new architecture). Two kinds of
split make the held-out cases:
- **family**: every family in turn is held out. A case is *inside* the domain when every op type
  of its graph occurs in the training split, *outside* otherwise;
- **op type**: for each op type that some rows have and others lack, every row with it (and the
  rest of those rows' families) is held out: cases of a graph with an op never seen, all outside.
An interval is the 10%-90% range of held-out log-ratios (actual / predicted) of its own kind of
case: inside from inside cases, outside from outside cases (never narrower than inside).

``evaluate`` is nested: each outer split runs the whole procedure (choose terms, fit, calibrate
the intervals) on its training rows only, then checks its held-out cases against the interval of
their kind; so the coverage it reports is what a user of the procedure gets, not a refit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from service.predict.costmodel import CANDIDATES, CostModel, Vector
from service.predict.training import TrainingRow

LEVEL = 0.8  # nominal level of every interval: 10% and 90% quantiles of held-out log-ratios
FALLBACK = "macs+nodes"  # with one family there is nothing to cross-validate on
MIN_CASES = 10  # fewer cases of a kind than this: that kind gives no interval of its own


@dataclass(frozen=True)
class Sample:
    row: TrainingRow
    vector: Vector
    ops: frozenset[str]  # op types of the row's graph: its domain


Predict = Callable[[Vector], float]
Fitter = Callable[[list[Sample]], Predict]
LogInterval = tuple[float, float]  # log(actual / predicted) bounds


@dataclass(frozen=True)
class Case:
    """One held-out prediction."""

    row_id: str
    split: str  # "family:<name>" or "op:<type>"
    predicted: float
    actual: float
    inside: bool  # every op type of the row occurred in the training split

    @property
    def log_ratio(self) -> float:
        return math.log(self.actual / max(self.predicted, 1e-9))

    @property
    def ape_pct(self) -> float:
        return abs(self.predicted - self.actual) / self.actual * 100


@dataclass(frozen=True)
class Calibration:
    """The intervals a prediction quotes, from held-out cases of its kind."""

    inside: LogInterval
    outside: LogInterval
    inside_cases: int
    outside_cases: int

    def interval(self, inside: bool) -> LogInterval:
        return self.inside if inside else self.outside


def families(samples: list[Sample]) -> list[str]:
    return sorted({s.row.family for s in samples})


def splits(samples: list[Sample]) -> Iterator[tuple[str, list[Sample], list[Sample]]]:
    """(name, train, test): each family held out, then each op type's rows (whole families).
    Op types that always occur together (Div and Erf of GELU) make one split, named by all:
    the same held-out rows counted twice would weigh their error twice."""
    for family in families(samples):
        yield (
            f"family:{family}",
            [s for s in samples if s.row.family != family],
            [s for s in samples if s.row.family == family],
        )
    everywhere = frozenset.intersection(*(s.ops for s in samples)) if samples else frozenset()
    by_test: dict[frozenset[str], list[str]] = {}
    for op in sorted(frozenset().union(*(s.ops for s in samples)) - everywhere):
        by_test.setdefault(frozenset(s.row.id for s in samples if op in s.ops), []).append(op)
    for test_ids, ops in by_test.items():
        test = [s for s in samples if s.row.id in test_ids]
        held = {s.row.family for s in test}
        train = [s for s in samples if s.row.family not in held]
        if len(families(train)) >= 2:
            yield f"op:{'+'.join(ops)}", train, test


def held_out(train: list[Sample], test: list[Sample], predict: Predict, split: str) -> list[Case]:
    seen = frozenset().union(*(s.ops for s in train))
    return [Case(s.row.id, split, predict(s.vector), s.row.latency_ms, s.ops <= seen) for s in test]


def cases(samples: list[Sample], fitter: Fitter) -> list[Case]:
    """Every held-out case of every split, ``fitter`` fitted on each split's training rows."""
    found = []
    for split, train, test in splits(samples):
        found += held_out(train, test, fitter(train), split)
    return found


def family_cases(found: list[Case]) -> list[Case]:
    return [c for c in found if c.split.startswith("family:")]


def log_interval(groups: list[list[float]]) -> LogInterval:
    """Bounds that cover ``LEVEL`` of a new group's cases, where the exchangeable unit is the
    held-out group (a family's rows err together: one biased family is not n independent
    misses). Split-conformal ranks over groups: the ceil((n + 1) * 0.9)-th smallest of the
    groups' highest log-ratios, the floor((n + 1) * 0.1)-th of their lowest, clamped to the
    extremes when n is small (with 8 families: the widest error any family showed)."""
    n = len(groups)
    tail = (1 - LEVEL) / 2
    lows = sorted(min(g) for g in groups)
    highs = sorted(max(g) for g in groups)
    return (
        lows[max(math.floor((n + 1) * tail), 1) - 1],
        highs[min(math.ceil((n + 1) * (1 - tail)), n) - 1],
    )


def _groups(found: list[Case]) -> list[list[float]]:
    by_split: dict[str, list[float]] = {}
    for case in found:
        by_split.setdefault(case.split, []).append(case.log_ratio)
    return list(by_split.values())


def calibrate(found: list[Case]) -> Calibration:
    """Inside: the family-held-out cases inside the domain, each family one group (every
    family case when fewer than ``MIN_CASES``). Outside: the hull of the inside interval and of
    the intervals of each kind of outside case (family held out with an unseen op; op type held
    out, each split one group), or of every error seen when neither kind has ``MIN_CASES``."""
    family = [c for c in found if c.split.startswith("family:")]
    inside = [c for c in family if c.inside]
    inner = log_interval(_groups(inside if len(inside) >= MIN_CASES else family))
    pools = (
        [c for c in family if not c.inside],
        [c for c in found if c.split.startswith("op:")],
    )
    parts = [inner] + [log_interval(_groups(pool)) for pool in pools if len(pool) >= MIN_CASES]
    if len(parts) == 1:
        parts.append((min(c.log_ratio for c in found), max(c.log_ratio for c in found)))
    return Calibration(
        inside=inner,
        outside=(min(p[0] for p in parts), max(p[1] for p in parts)),
        inside_cases=len(inside),
        outside_cases=sum(len(pool) for pool in pools),
    )


def latencies(samples: list[Sample]) -> np.ndarray:
    return np.array([s.row.latency_ms for s in samples])


def fit_candidate(name: str) -> Fitter:
    def fitter(train: list[Sample]) -> Predict:
        return CostModel.fit(name, [s.vector for s in train], latencies(train)).predict

    return fitter


def median_ape(found: list[Case]) -> float:
    return float(np.median([c.ape_pct for c in found])) if found else float("nan")


def spearman(found: list[Case]) -> float:
    from scipy.stats import spearmanr

    if len(found) < 3:
        return float("nan")
    return float(spearmanr([c.predicted for c in found], [c.actual for c in found]).statistic)


def choose(samples: list[Sample]) -> str:
    """The candidate term set with the lowest leave-one-family-out median error on ``samples``
    (fewer terms win ties: candidates are listed simplest first)."""
    if len(families(samples)) < 2:
        return FALLBACK

    def score(name: str) -> float:
        fitter = fit_candidate(name)
        found = []
        for split, train, test in splits(samples):
            if split.startswith("family:"):
                found += held_out(train, test, fitter(train), split)
        return median_ape(found)

    scores = {name: score(name) for name in CANDIDATES}
    return min(CANDIDATES, key=lambda name: scores[name])


@dataclass(frozen=True)
class Fitted:
    """What a procedure gives from training rows: a prediction function and its intervals."""

    predict: Predict
    calibration: Calibration
    label: str  # the method as fitted, e.g. "predictor (macs+weights)"


Procedure = Callable[[list[Sample]], Fitted]


def predictor_procedure(train: list[Sample]) -> Fitted:
    """Choose the terms by leave-one-family-out on ``train``, fit, calibrate with that term set."""
    name = choose(train)
    fitter = fit_candidate(name)
    return Fitted(fitter(train), calibrate(cases(train, fitter)), f"predictor ({name})")


def fitted_procedure(fitter: Fitter, label: str) -> Procedure:
    """A fixed method (a baseline): fit and calibrate with it."""
    return lambda train: Fitted(fitter(train), calibrate(cases(train, fitter)), label)


@dataclass(frozen=True)
class Evaluation:
    """The nested verdict on a procedure: every outer case with the interval it was given."""

    cases: tuple[Case, ...]
    covered: tuple[bool, ...]  # the case's actual latency lay in its kind's interval

    def _coverage(self, inside: bool) -> tuple[float, int]:
        hits = [h for c, h in zip(self.cases, self.covered, strict=True) if c.inside == inside]
        return (sum(hits) / len(hits) if hits else float("nan")), len(hits)

    def summary(self) -> dict[str, float | int]:
        family = family_cases(list(self.cases))
        inside = [c for c in family if c.inside]
        coverage_in, n_in = self._coverage(True)
        coverage_out, n_out = self._coverage(False)
        return {
            "rows": len(family),
            "folds": len({c.split for c in family}),
            "median_ape_pct": median_ape(inside),
            "spearman": spearman(inside),
            "inside_rows": len(inside),
            "median_ape_pct_all": median_ape(family),
            "spearman_all": spearman(family),
            "abstained_share": 1 - len(inside) / len(family) if family else float("nan"),
            "coverage_inside": coverage_in,
            "coverage_inside_cases": n_in,
            "coverage_outside": coverage_out,
            "coverage_outside_cases": n_out,
        }


def evaluate(samples: list[Sample], procedure: Procedure) -> Evaluation:
    """Nested: each outer split fits and calibrates ``procedure`` on its training rows alone."""
    found: list[Case] = []
    covered: list[bool] = []
    for split, train, test in splits(samples):
        fitted = procedure(train)
        for case in held_out(train, test, fitted.predict, split):
            low, high = fitted.calibration.interval(case.inside)
            found.append(case)
            covered.append(low <= case.log_ratio <= high)
    return Evaluation(tuple(found), tuple(covered))
