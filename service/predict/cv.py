"""Leave-one-family-out cross-validation, and choosing the predictor's terms with it.

Variants of one family share blocks, so a random split lets a model "predict" repvit_m1_1 from
repvit_m1_0; holding out a whole family asks the real question (a new architecture). The term set
is chosen by this CV on the training rows only, and the error a predictor reports is *nested*:
each outer fold repeats the choice on its own training families, so no held-out row ever
influences the model that predicts it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from service.predict.costmodel import CANDIDATES, CostModel, Vector
from service.predict.training import TrainingRow

INTERVAL = (0.1, 0.9)  # the prediction interval: 10% and 90% quantiles of CV log-ratios
FALLBACK = "macs+nodes"  # with one family there is nothing to cross-validate on


@dataclass(frozen=True)
class Sample:
    row: TrainingRow
    vector: Vector


Predict = Callable[[Vector], float]
Fitter = Callable[[list[Sample]], Predict]


@dataclass(frozen=True)
class Fold:
    family: str  # held out
    train_ids: tuple[str, ...]
    test_ids: tuple[str, ...]


@dataclass(frozen=True)
class CvError:
    """What a prediction quotes about the method that made it."""

    method: str
    rows: int
    folds: int
    median_ape_pct: float  # median absolute % error over held-out rows
    spearman: float  # rank correlation of held-out predictions with the published latencies
    log_ratio_interval: tuple[float, float]  # quantiles of log(actual / predicted)


@dataclass(frozen=True)
class CvResult:
    method: str
    folds: tuple[Fold, ...]
    predicted: dict[str, float]  # row id -> prediction made with its family held out
    actual: dict[str, float]

    def error(self) -> CvError:
        from scipy.stats import spearmanr

        ids = sorted(self.predicted)
        pred = np.array([self.predicted[i] for i in ids])
        true = np.array([self.actual[i] for i in ids])
        ape = np.abs(pred - true) / true * 100
        log_ratio = np.log(true / np.maximum(pred, 1e-9))
        rho = float(spearmanr(pred, true).statistic) if len(ids) > 2 else float("nan")
        return CvError(
            method=self.method,
            rows=len(ids),
            folds=len(self.folds),
            median_ape_pct=float(np.median(ape)),
            spearman=rho,
            log_ratio_interval=(
                float(np.quantile(log_ratio, INTERVAL[0])),
                float(np.quantile(log_ratio, INTERVAL[1])),
            ),
        )


def families(samples: list[Sample]) -> list[str]:
    return sorted({s.row.family for s in samples})


def leave_one_family_out(samples: list[Sample], fitter: Fitter, method: str) -> CvResult:
    """Fit on all families but one, predict the one held out; every family in turn."""
    folds, predicted = [], {}
    for family in families(samples):
        train = [s for s in samples if s.row.family != family]
        test = [s for s in samples if s.row.family == family]
        predict = fitter(train)
        predicted.update({s.row.id: predict(s.vector) for s in test})
        folds.append(Fold(family, tuple(s.row.id for s in train), tuple(s.row.id for s in test)))
    actual = {s.row.id: s.row.latency_ms for s in samples}
    return CvResult(method, tuple(folds), predicted, actual)


def latencies(samples: list[Sample]) -> np.ndarray:
    return np.array([s.row.latency_ms for s in samples])


def fit_candidate(name: str) -> Fitter:
    def fitter(train: list[Sample]) -> Predict:
        return CostModel.fit(name, [s.vector for s in train], latencies(train)).predict

    return fitter


def choose(samples: list[Sample]) -> str:
    """The candidate term set with the lowest leave-one-family-out median error on ``samples``
    (fewer terms win ties: candidates are listed simplest first)."""
    if len(families(samples)) < 2:
        return FALLBACK
    scores = {
        name: leave_one_family_out(samples, fit_candidate(name), name).error().median_ape_pct
        for name in CANDIDATES
    }
    return min(CANDIDATES, key=lambda name: scores[name])


def fit_chosen(samples: list[Sample]) -> CostModel:
    return CostModel.fit(choose(samples), [s.vector for s in samples], latencies(samples))


def nested_cv(samples: list[Sample]) -> CvResult:
    """The error of the whole procedure (choose terms, then fit), each fold choosing anew."""
    return leave_one_family_out(samples, lambda train: fit_chosen(train).predict, "predictor")
