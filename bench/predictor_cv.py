"""How far the latency predictions can be trusted, per device class: nested leave-one-family-out
CV of the predictor and of its baselines, interval coverage inside and outside the domain, the
share of cases abstained, the method offered, and how a published device's table is learnt from
k of its own rows (adaptation).

For each class with published latencies (package data, service/predict/data), every method
(the predictor: terms chosen by an inner CV, non-negative least squares; baselines: latency ∝
MACs, ∝ parameters, ∝ this host's single-thread onnxruntime latency) is evaluated nested: each
outer split (a family held out; the rows of an op type held out) chooses terms and calibrates
its 80% intervals on its training rows alone, then predicts the held-out rows. Printed per method:
median absolute % error and Spearman's rho inside the domain (family held out, every op type
seen), the same over every family-held-out row, the coverage achieved by the inside and by the
outside interval (nominal 80%, target >= 75%) with its cases, held-out groups and exact 95%
binomial interval, and the share of cases abstained (outside the
domain). Nothing is tuned on a test fold; nothing is timed.

Adaptation: one published device table is left out; the predictor is fitted on the published
rows of other devices (k = 0), then on those rescaled to and joined by k random rows of the
table (``service.predict.fitting.adapt``, what `latbench predictor fit --device` does with rows
measured here); the error and Spearman on the rest of the table, over ``--draws`` random draws.

    nice .venv/bin/python bench/predictor_cv.py [--class iphone12-class] [--draws 20] [--rows]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
from importlib import resources
from statistics import mean

from service.predict.cv import (
    Case,
    Evaluation,
    Sample,
    choose,
    families,
    fit_candidate,
    median_ape,
    spearman,
)
from service.predict.featurecache import FeatureCache, identity_key
from service.predict.fitting import adapt, fit_class, samples_for
from service.predict.hostcpu import SHIPPED as HOST_FILE
from service.predict.training import device_classes, published_rows

# (class, device table left out, class whose rows are the prior when the class has no other table)
ADAPTATION = (
    ("iphone12-class", "iPhone 12 (iOS 16)", None),
    ("gpu-cuda", "NVIDIA GeForce RTX 2080Ti", "cpu-x86_64"),
    ("cpu-arm64", "ARM Cortex-A72 CPU (single thread)", "cpu-x86_64"),
)
KS = (0, 5, 10, 20)
MIN_EVAL = 5  # rows of the table left to evaluate on, at least


def pct(value: float) -> str:
    return "  -" if math.isnan(value) else f"{value:.0%}"


def coverage(evaluation: Evaluation, s: dict, kind: str) -> str:
    """Achieved coverage of one kind of case, with its cases, groups and exact 95% binomial
    interval (cases taken as independent: optimistic, a family misses together)."""
    low, high = evaluation.coverage_ci(kind == "inside")
    ci = "" if math.isnan(low) else f", 95% CI {low:.0%}–{high:.0%}"
    return (
        f"{kind} {pct(s[f'coverage_{kind}'])} ({s[f'coverage_{kind}_cases']} cases, "
        f"{s[f'coverage_{kind}_groups']} groups{ci})"
    )


def method_line(name: str, evaluation: Evaluation) -> str:
    s = evaluation.summary()
    return (
        f"  {name:<10} inside: {s['median_ape_pct']:5.1f}% ρ {s['spearman']:5.2f} "
        f"({s['inside_rows']:>2}/{s['rows']:>2} rows) | all rows: {s['median_ape_pct_all']:5.1f}% "
        f"ρ {s['spearman_all']:5.2f} | 80% interval achieved: {coverage(evaluation, s, 'inside')}"
        f", {coverage(evaluation, s, 'outside')} | abstained {pct(s['abstained_share'])}"
    )


def host_description() -> str:
    path = resources.files("service.predict").joinpath("data", HOST_FILE)
    if not path.is_file():
        return "no host CPU latency file: host-cpu baseline skipped"
    data = json.loads(path.read_text())
    host = data["host"]
    others = [e["host_load"]["others_cpu_pct"] for e in data["entries"].values()]
    return (
        f"host-cpu baseline measured on {host['cpu_model']} ({host['runtime']} "
        f"{host['runtime_version']}, {host['threads']} thread), {len(data['entries'])} models, "
        f"other processes' CPU during each measurement {min(others):.0f}–{max(others):.0f}%"
    )


def unique(samples: list[Sample]) -> list[Sample]:
    """One row per graph: a table restated by a README counts once."""
    seen: dict[str, Sample] = {}
    for s in samples:
        seen.setdefault(identity_key(s.row.spec), s)
    return list(seen.values())


def adaptation(device_class: str, device: str, prior_class: str | None, draws: int) -> None:
    cache = FeatureCache()
    mine, _, _ = samples_for(published_rows(device_class), cache)
    table = unique([s for s in mine if s.row.device == device])
    if prior_class is None:
        prior = [s for s in mine if s.row.device != device]
        where = f"other {device_class} tables"
    else:
        prior, _, _ = samples_for(published_rows(prior_class), cache)
        where = f"the {prior_class} table"
    print(f"\n{device_class}: table {device!r} ({len(table)} graphs) left out; prior: {where} ({len(prior)} rows, {len(families(prior))} families)")  # fmt: skip
    for k in KS:
        if len(table) - k < MIN_EVAL:
            print(f"  k={k:>2}: fewer than {MIN_EVAL} rows would be left to evaluate on")
            continue
        errors, rhos = [], []
        for draw in range(draws if k else 1):
            picked = random.Random(draw).sample(table, k)
            rest = [s for s in table if s not in picked]
            train = adapt(prior, picked)
            predict = fit_candidate(choose(train))(train)
            held = [
                Case(s.row.id, "table", predict(s.vector), s.row.latency_ms, True) for s in rest
            ]
            errors.append(median_ape(held))
            rhos.append(spearman(held))
        print(
            f"  k={k:>2}: median |err| on the other {len(table) - k} rows {mean(errors):6.1f}%  "
            f"Spearman {mean(rhos):5.2f}  (mean of {len(errors)} draw(s))"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--class", dest="only", help="one device class only")
    parser.add_argument("--draws", type=int, default=20, help="random draws of k rows")
    parser.add_argument("--rows", action="store_true", help="print every held-out prediction")
    args = parser.parse_args()
    print(f"host load now (1/5/15 min): {os.getloadavg()}; this script times nothing")
    print(host_description())
    for device_class in device_classes():
        if args.only and device_class.value != args.only:
            continue
        fit = fit_class(device_class, published_rows(device_class), features=FeatureCache())
        print(
            f"\n{device_class.value}: {len(fit.samples)} rows with features, "
            f"{len(families(fit.samples))} families, {len(fit.skipped)} without features"
        )
        for name, evaluation in fit.evaluations.items():
            print(method_line(name, evaluation))
        print(f"  offered: {fit.label} — {fit.reason}")
        if fit.calibration is not None:
            cal = fit.calibration
            print(
                "  shipped intervals (× prediction): inside "
                f"{math.exp(cal.inside[0]):.2f}–{math.exp(cal.inside[1]):.2f} "
                f"({cal.inside_cases} cases), outside {math.exp(cal.outside[0]):.2f}–"
                f"{math.exp(cal.outside[1]):.2f} ({cal.outside_cases} cases)"
            )
        if args.rows:
            by_id = {s.row.id: s.row for s in fit.samples}
            cases = fit.evaluations["predictor"].cases
            for case in sorted(cases, key=lambda c: (by_id[c.row_id].family, c.split)):
                row = by_id[case.row_id]
                print(
                    f"    {case.split:<22} {row.model:<28} {'in ' if case.inside else 'OUT'} "
                    f"published {row.latency_ms:8.3f} ms  predicted {case.predicted:8.3f} ms"
                )
    print("\nadaptation: a device table left out, k of its rows added back")
    for device_class, device, prior_class in ADAPTATION:
        if not args.only or args.only == device_class:
            adaptation(device_class, device, prior_class, args.draws)


if __name__ == "__main__":
    main()
