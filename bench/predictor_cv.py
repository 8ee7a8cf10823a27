"""Leave-one-family-out error of the latency predictor and of its baselines, per device class.

For each class with published latencies (package data, service/predict/data): every model family
is held out in turn, the predictor (term set chosen by an inner leave-one-family-out CV on the
remaining families only, then non-negative least squares) and the baselines (latency ∝ MACs,
∝ parameters, ∝ this host's single-thread onnxruntime latency) are fitted on the other families,
and the held-out rows are predicted. Printed: median absolute % error and Spearman's rho over
all held-out rows. Nothing is tuned on a test fold. Targets for iphone12-class: Spearman >= 0.9,
median absolute error <= 15%, clearly better than the MACs baseline.

Features come from the shipped cache (no export); rows without cached features are listed.

    .venv/bin/python bench/predictor_cv.py [--rows]
"""

from __future__ import annotations

import argparse
import json
import os
from importlib import resources

from service.predict.costmodel import BASELINES, CANDIDATES, Proportional
from service.predict.cv import (
    Sample,
    families,
    fit_candidate,
    latencies,
    leave_one_family_out,
    nested_cv,
)
from service.predict.featurecache import FeatureCache
from service.predict.hostcpu import SHIPPED as HOST_FILE
from service.predict.predictor import fit_predictor, samples_for
from service.predict.training import device_classes, published_rows


def proportional(name: str):
    def fitter(train: list[Sample]):
        return Proportional.fit(name, [s.vector for s in train], latencies(train)).predict

    return fitter


def line(label: str, samples: list[Sample], result) -> str:
    error = result.error()
    return (
        f"  {label:<34} rows {error.rows:>3}  families {len(families(samples)):>2}  "
        f"median |err| {error.median_ape_pct:6.1f}%  Spearman {error.spearman:5.2f}"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", action="store_true", help="print every held-out prediction")
    args = parser.parse_args()
    print(f"host load now (1/5/15 min): {os.getloadavg()}; this script times nothing")
    print(host_description())
    cache = FeatureCache()
    for device_class in device_classes():
        samples, _, skipped = samples_for(published_rows(device_class), cache)
        print(f"\n{device_class.value}: {len(samples)} rows with features, {len(skipped)} without")
        if len(families(samples)) < 2:
            print("  fewer than 2 families: no cross-validation possible")
            continue
        predictor = fit_predictor(device_class, [s.row for s in samples], features=cache)
        model = predictor.predictor.model
        nested = nested_cv(samples)
        print(line("predictor (nested LOFO)", samples, nested))
        for name in BASELINES:
            usable = [s for s in samples if BASELINES[name] in s.vector]
            if len(families(usable)) < 2:
                print(f"  baseline ∝ {name:<24} not enough rows ({len(usable)})")
                continue
            result = leave_one_family_out(usable, proportional(name), name)
            print(line(f"baseline ∝ {name}", usable, result))
        print("  (for information, not the reported error: each fixed term set, plain LOFO)")
        for name in CANDIDATES:
            result = leave_one_family_out(samples, fit_candidate(name), name)
            print(line(f"  terms {name}", samples, result))
        terms = ", ".join(f"{t}={c:.3g}" for t, c in zip(model.terms, model.coef, strict=True))
        print(f"  fitted on all rows: {model.name}: {terms}")
        if skipped:
            print(f"  without features: {', '.join(sorted(skipped))}")
        if args.rows:
            by_id = {s.row.id: s.row for s in samples}
            for row_id, value in sorted(
                nested.predicted.items(), key=lambda kv: by_id[kv[0]].family
            ):
                row = by_id[row_id]
                print(
                    f"    {row.family:<18} {row.model:<30} published {row.latency_ms:8.3f} ms  "
                    f"held-out prediction {value:8.3f} ms  ({value / row.latency_ms - 1:+.0%})"
                )


if __name__ == "__main__":
    main()
