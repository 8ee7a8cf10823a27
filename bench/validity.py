"""Validity: do latbench's single-thread CPU latencies rank models as FasterNet's published CPU
table does (PyTorch FP32, one thread of an Intel i9-9900X)? Different CPU, same ranking expected.

Measures every model of that table that timm has (MobileViT and EdgeNeXt at 256 px, the rest at
224; random weights) with the onnxruntime and the PyTorch runners, one thread, and prints
Kendall's tau and Spearman's rho against the published latencies, for the median latency, the
minimum, and the median CPU time of the computing thread (`cpu_ms`). On a host shared with other
jobs the latency is inflated by waiting for a core; the minimum (least disturbed run) and the CPU
time are what a quiet machine would give. Target: tau >= 0.9 (PyTorch).
Source: the packaged reference data (service/data/published_reference.csv: FasterNet paper,
Table 3); LATBENCH_REFERENCE_CSV names another file with the same columns.

    .venv/bin/python bench/validity.py [--quick] [--max-gmacs G] [--seconds S]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from _artifacts import artifacts
from scipy.stats import kendalltau, spearmanr

from devices.runner import get_runner
from exporters.errors import LatbenchError
from exporters.formats import ExportFormat
from service import reference

OVERRIDE = os.environ.get("LATBENCH_REFERENCE_CSV")
DEVICE = "Intel Core i9-9900X CPU (single thread)"
AT_256 = ("mobilevit_", "edgenext_")


def published() -> list[tuple[str, float, float]]:
    """(timm name, published ms, GMACs) of the table's rows that timm has."""
    rows = [
        r
        for r in reference.rows(Path(OVERRIDE) if OVERRIDE else None)
        if r["device"] == DEVICE and r["timm_name"] and r["latency_ms"]
    ]
    return [(r["timm_name"], float(r["latency_ms"]), float(r["gmacs"] or "nan")) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="models up to 2.1 GMACs, 6 s per runner"
    )
    parser.add_argument("--max-gmacs", type=float, default=None)
    parser.add_argument(
        "--seconds", type=float, default=None, help="sampling cap per model and runner"
    )
    args = parser.parse_args()
    max_gmacs = args.max_gmacs or (2.1 if args.quick else float("inf"))
    seconds = args.seconds or (6.0 if args.quick else 15.0)
    settings = {
        "threads": 1,
        "target_rel_ci": 0.02,
        "max_seconds": seconds,
        "warmup_max_seconds": 8.0,
    }
    runners = {
        ExportFormat.ONNX: get_runner("ort-cpu"),
        ExportFormat.TORCH_EXPORT: get_runner("torch-cpu"),
    }
    rows = []
    print(
        f"{'model':<24} {'px':>4} {'published':>9} | {'ort':>7} {'min':>7} {'cpu':>7} | {'torch':>7} "
        f"{'min':>7} {'cpu':>7} | others  (ms, 1 thread)"
    )
    for name, ref_ms, gmacs in published():
        if not gmacs <= max_gmacs:
            continue
        side = 256 if name.startswith(AT_256) else 224
        try:
            paths = artifacts(name, tuple(runners), side)
            measured = {fmt: runners[fmt].measure(paths[fmt], settings) for fmt in runners}
        except LatbenchError as error:
            print(f"{name:<24} skipped: {error}")
            continue
        ort, pt = measured[ExportFormat.ONNX], measured[ExportFormat.TORCH_EXPORT]
        others = (ort.host_load["others_cpu_pct"] + pt.host_load["others_cpu_pct"]) / 2
        row = (name, ref_ms, *_figures(ort), *_figures(pt))
        rows.append(row)
        cells = (
            " ".join(f"{v:7.2f}" for v in row[2:5]) + " | " + " ".join(f"{v:7.2f}" for v in row[5:])
        )
        print(f"{name:<24} {side:>4} {ref_ms:9.1f} | {cells} | {others:4.0f}%", flush=True)
    ref = [r[1] for r in rows]
    for column, label in enumerate(("ort median", "ort min", "ort cpu_ms", "torch median", "torch min",
                                    "torch cpu_ms"), start=2):  # fmt: skip
        ours = [r[column] for r in rows]
        tau, rho = kendalltau(ref, ours).statistic, spearmanr(ref, ours).statistic
        print(
            f"{label:<13} n={len(rows)}  Kendall tau {tau:.3f}  Spearman rho {rho:.3f}"
            + ("  (target tau >= 0.9)" if label.startswith("torch") else "")
        )


def _figures(measurement) -> tuple[float, float, float]:
    return (measurement.latency_ms.median, measurement.latency_ms.min, measurement.cpu_ms.median)


if __name__ == "__main__":
    main()
