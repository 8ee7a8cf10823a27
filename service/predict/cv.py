"""Cross-validation of a latency method: held-out cases inside and outside the training domain,
the intervals built from them, and the nested evaluation that says whether those intervals hold.

Variants of one family share blocks, so a random split lets a model "predict" repvit_m1_1 from
repvit_m1_0; holding out a whole family asks the real question (a new architecture). Two kinds of
split make the held-out cases:
- **family**: every family in turn is held out. A case is *inside* the domain when every op type
  of its graph occurs in the training split, *outside* otherwise;
- **op type**: for each op type that some rows have and others lack, every row with it (and the
  rest of those rows' families) is held out: cases of a graph with an op never seen, all outside.
An interval is a split-conformal bound on held-out log-ratios (actual / predicted) of its own
kind of case: inside from inside cases, outside from outside cases (never narrower than inside).

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

LEVEL = 0.8  # nominal level of every interval (split-conformal over held-out groups)
FALLBACK = "macs+nodes"  # with one family there is nothing to cross-validate on


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


def conformal_rank(n: int) -> int | None:
    """The finite-sample split-conformal rank ceil((n + 1) * LEVEL) among ``n`` calibration
    scores, or None when it exceeds n: with so few groups no finite bound has the guarantee
    (for 80%, fewer than 4 groups)."""
    rank = math.ceil((n + 1) * LEVEL - 1e-9)  # 1e-9: (n + 1) * 0.8 is not exact in binary
    return rank if rank <= n else None


def log_interval(groups: list[list[float]]) -> LogInterval | None:
    """Bounds that cover all of a new group's cases with probability >= ``LEVEL``, where the
    exchangeable unit is the held-out group (a family's rows err together: one biased family is
    not n independent misses). Split-conformal with one score per group, its largest
    |log(actual / predicted)|, and the bound the ``conformal_rank``-th smallest score: for a new
    group exchangeable with the n calibration groups, P(its score <= that bound) >=
    rank / (n + 1) >= LEVEL at every n, which a two-tailed rule cannot give with 8-9 groups (each
    tail needs the ceil((n + 1) * 0.9)-th of n, which only exists for n >= 9; clamping it to the
    extreme left 1 - 2 / (n + 1), 78% at n = 8). The price is symmetry in log space: the bound
    is as wide below the prediction as the worst group was above it, or the reverse. None when
    there are too few groups for the rank."""
    rank = conformal_rank(len(groups))
    if rank is None:
        return None
    bound = sorted(max(abs(r) for r in g) for g in groups)[rank - 1]
    return (-bound, bound)


def _groups(found: list[Case]) -> list[list[float]]:
    by_split: dict[str, list[float]] = {}
    for case in found:
        by_split.setdefault(case.split, []).append(case.log_ratio)
    return list(by_split.values())


def _widest(found: list[Case]) -> LogInterval:
    bound = max(abs(c.log_ratio) for c in found)
    return (-bound, bound)


def calibrate(found: list[Case]) -> Calibration:
    """Inside: the family-held-out cases inside the domain, each family one group; when those
    families are too few for the conformal rank, every family-held-out case (a family with an
    unseen op erred at least as freely as one without), and when even those are too few, the
    widest error seen. Outside: the hull of the inside interval and of the intervals of each kind
    of outside case with groups enough for the rank (family held out with an unseen op; op type
    held out, each split one group), or of every error seen when neither kind has."""
    family = [c for c in found if c.split.startswith("family:")]
    inside = [c for c in family if c.inside]
    inner = log_interval(_groups(inside)) or log_interval(_groups(family)) or _widest(found)
    pools = (
        [c for c in family if not c.inside],
        [c for c in found if c.split.startswith("op:")],
    )
    parts = [inner] + [p for pool in pools if pool and (p := log_interval(_groups(pool)))]
    if len(parts) == 1:
        parts.append(_widest(found))
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

    def _hits(self, inside: bool) -> list[bool]:
        return [h for c, h in zip(self.cases, self.covered, strict=True) if c.inside == inside]

    def _coverage(self, inside: bool) -> tuple[float, int]:
        hits = self._hits(inside)
        return (sum(hits) / len(hits) if hits else float("nan")), len(hits)

    def coverage_ci(self, inside: bool, confidence: float = 0.95) -> tuple[float, float]:
        """Exact (Clopper-Pearson) binomial interval of the coverage achieved by the cases of
        one kind, so a figure from 9 cases is read with the uncertainty it has. Optimistic:
        it treats cases as independent, while a family's rows miss together, so the effective
        sample is nearer the number of groups (``coverage_*_groups`` in the summary)."""
        from scipy.stats import binomtest

        hits = self._hits(inside)
        if not hits:
            return float("nan"), float("nan")
        found = binomtest(sum(hits), len(hits)).proportion_ci(confidence, method="exact")
        return float(found.low), float(found.high)

    def _group_count(self, inside: bool) -> int:
        return len({c.split for c in self.cases if c.inside == inside})

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
            "coverage_inside_groups": self._group_count(True),  # held-out families
            "coverage_outside_groups": self._group_count(False),  # held-out splits of either kind
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
