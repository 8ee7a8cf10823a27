"""Fitting a class's predictor: its rows with features, the nested evaluation of the predictor
and of every baseline, the one method offered, and adaptation to rows measured here.

A method is offered only when its nested leave-one-family-out error (every held-out row, inside
the domain or not) beats every other method's on the rows both cover: the predictor first, else
the best baseline that can predict any graph (MACs, parameters), else nothing. The host-CPU
baseline is compared but never offered (a new graph has no host latency until measured here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from exporters.errors import LatbenchError, SpecError
from exporters.features import GraphFeatures
from exporters.formats import DeviceClass, parse_device_class
from service.predict.costmodel import BASELINES, CostModel, Proportional
from service.predict.cv import (
    Calibration,
    Evaluation,
    Sample,
    calibrate,
    cases,
    choose,
    evaluate,
    families,
    family_cases,
    fit_candidate,
    fitted_procedure,
    latencies,
    median_ape,
    predictor_procedure,
)
from service.predict.featurecache import FeatureCache, identity_key
from service.predict.hostcpu import host_latency
from service.predict.training import TrainingRow

PREDICTOR = "predictor"
OFFERABLE_BASELINES = ("macs", "params")  # host-cpu needs a host latency of the graph itself


def samples_for(
    rows: list[TrainingRow], features: FeatureCache
) -> tuple[list[Sample], dict[str, GraphFeatures], dict[str, str]]:
    """Rows with their feature vectors (plus ``host_ms`` where this host measured the spec);
    rows whose features cannot be had are returned as skipped, with the reason."""
    host = host_latency()
    samples, graphs, skipped = [], {}, {}
    for row in rows:
        try:
            cached = features.get(row.spec)
        except LatbenchError as exc:  # no store to export into, or the export failed
            skipped[row.id] = str(exc)
            continue
        vector = cached.features.vector()
        if identity_key(row.spec) in host:
            vector["host_ms"] = host[identity_key(row.spec)]
        samples.append(Sample(row, vector, frozenset(cached.features.op_types)))
        graphs[row.id] = cached.features
    return samples, graphs, skipped


def baseline_fitter(name: str):
    def fitter(train: list[Sample]):
        return Proportional.fit(name, [s.vector for s in train], latencies(train)).predict

    return fitter


def evaluations(samples: list[Sample]) -> dict[str, Evaluation]:
    """Nested evaluation of the predictor and of each baseline (on the rows it can use)."""
    found = {PREDICTOR: evaluate(samples, predictor_procedure)}
    for name, key in BASELINES.items():
        usable = [s for s in samples if key in s.vector]
        if len(families(usable)) >= 2:
            found[name] = evaluate(usable, fitted_procedure(baseline_fitter(name), name))
    return found


def error_on(evaluation: Evaluation, rows: set[str]) -> float:
    """Median abs % error of ``evaluation``'s family-held-out cases of ``rows``."""
    return median_ape([c for c in family_cases(list(evaluation.cases)) if c.row_id in rows])


def rows_of(evaluation: Evaluation) -> set[str]:
    return {c.row_id for c in family_cases(list(evaluation.cases))}


def beats(evaluations_: dict[str, Evaluation], name: str) -> dict[str, tuple[float, float]]:
    """Other method -> (``name``'s error, its error) on the rows both cover."""
    mine = evaluations_[name]
    return {
        other: (error_on(mine, common), error_on(found, common))
        for other, found in evaluations_.items()
        if other != name and (common := rows_of(mine) & rows_of(found))
    }


def offered(evaluations_: dict[str, Evaluation]) -> tuple[str | None, str]:
    """The method to offer and why: the predictor if it beats every baseline, else the
    best offerable baseline that beats every other method, else None."""
    order = [PREDICTOR] + sorted(
        (b for b in OFFERABLE_BASELINES if b in evaluations_),
        key=lambda b: error_on(evaluations_[b], rows_of(evaluations_[b])),
    )
    reasons = []
    for name in order:
        lost = {o: e for o, e in beats(evaluations_, name).items() if not e[0] < e[1]}
        if not lost:
            return name, "; ".join([*reasons, f"{name} beats every other method"])
        worse = ", ".join(f"{o} {e[1]:.1f}% vs {e[0]:.1f}%" for o, e in lost.items())
        reasons.append(f"{name} loses to {worse}")
    return None, "; ".join(reasons)


@dataclass(frozen=True)
class Fit:
    """A class fitted: the method offered (None: no method beats the others), fitted on every
    row, its intervals, and the nested evaluation of every method."""

    device_class: str
    method: str | None
    label: str
    model: CostModel | Proportional | None
    calibration: Calibration | None
    reason: str
    evaluations: dict[str, Evaluation]
    samples: list[Sample]
    skipped: dict[str, str]


def fit_class(
    device_class: DeviceClass | str, rows: list[TrainingRow], *, features: FeatureCache
) -> Fit:
    """Evaluate every method on ``rows`` (one class), offer one, fit it on all rows."""
    samples, _, skipped = samples_for(rows, features)
    return fit_samples(device_class, samples, skipped)


def fit_samples(
    device_class: DeviceClass | str, samples: list[Sample], skipped: dict[str, str]
) -> Fit:
    device_class = parse_device_class(device_class)
    if len(families(samples)) < 2:
        raise SpecError(
            f"{device_class.value} has training rows from {len(families(samples))} model "
            "families; leave-one-family-out needs at least 2",
            field="device",
        )
    found = evaluations(samples)
    method, reason = offered(found)
    model: CostModel | Proportional | None = None
    calibration = None
    label = "none"
    if method == PREDICTOR:
        name = choose(samples)
        model = CostModel.fit(name, [s.vector for s in samples], latencies(samples))
        calibration = calibrate(cases(samples, fit_candidate(name)))
        label = f"predictor ({name})"
    elif method is not None:
        model = Proportional.fit(method, [s.vector for s in samples], latencies(samples))
        calibration = calibrate(cases(samples, baseline_fitter(method)))
        label = f"baseline ∝ {method}"
    return Fit(
        device_class.value, method, label, model, calibration, reason, found, samples, skipped
    )


def adapt(prior: list[Sample], measured: list[Sample]) -> list[Sample]:
    """Training rows for a device from published rows of similar devices (``prior``) and rows
    measured on the device itself: the prior rows rescaled by the geometric mean ratio of the
    measured rows to what the prior rows alone predict for them, then both together (as more
    rows are measured they outweigh the prior). No measured rows: the prior as it is."""
    if not measured:
        return prior
    predict = fit_candidate(choose(prior))(prior)
    ratio = math.exp(
        float(
            np.mean([math.log(s.row.latency_ms / max(predict(s.vector), 1e-9)) for s in measured])
        )
    )
    scaled = [replace(s, row=replace(s.row, latency_ms=s.row.latency_ms * ratio)) for s in prior]
    return scaled + measured
