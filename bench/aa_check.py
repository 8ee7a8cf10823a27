"""A/A check of the A/B mode: the same model as A and as B (two separately loaded sessions),
compared N times. Prints the ratio estimates' mean, spread and worst case and how often the 95%
CI excludes 1.0. Target: no estimate off by more than 2%.

The A/B mode builds its CI across `ab_reloads` freshly loaded session pairs (alternating which
side loads and runs first), because two sessions of one model differ by ~1% from one load to the
next: the last line shows how often a CI built from one pair's samples alone (bootstrap of its
block ratios) would have excluded 1.0.

Single-thread CPU comparisons also carry the same estimate on the computing thread's CPU time
(`cpu_ratio`), which waiting for a core on a shared host does not inflate; it is printed too.

    .venv/bin/python bench/aa_check.py [--model mobileone_s0] [--runs 20] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from _artifacts import artifact

from devices.runner import get_runner


def samples_only_excludes_one(a: list[float], b: list[float], rng: np.random.Generator) -> bool:
    """Bootstrap CI of one session pair's estimate (median of ABBA block ratios) from that pair's
    samples alone: the interval one would report without reloading."""
    logs = np.log(
        np.asarray(b).reshape(-1, 2).sum(axis=1) / np.asarray(a).reshape(-1, 2).sum(axis=1)
    )
    medians = [np.median(rng.choice(logs, logs.size)) for _ in range(400)]
    lo, hi = np.exp(np.quantile(medians, [0.025, 0.975]))
    return not lo <= 1.0 <= hi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobileone_s0")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="10 runs")
    args = parser.parse_args()
    runs = 10 if args.quick else args.runs
    path = artifact(args.model)
    runner = get_runner("ort-cpu")
    rng = np.random.default_rng(0)
    ratios, excluded, naive_excluded, naive_total = [], 0, 0, 0
    cpu_ratios, cpu_excluded = [], 0
    print(f"model {args.model}, {args.threads} thread(s), {runs} A/A comparisons")
    print(f"{'run':>3} {'B/A':>7} {'95% CI':>17}  per-pair ratios")
    for i in range(runs):
        comparison = runner.compare(path, path, {"threads": args.threads})
        ratios.append(comparison.ratio)
        excluded += comparison.estimate.excludes_one()
        cpu_ratios.append(comparison.cpu_estimate.ratio)
        cpu_excluded += comparison.cpu_estimate.excludes_one()
        lo, hi = comparison.ci95
        pairs = comparison.estimate.estimates
        per = len(comparison.samples_a) // len(pairs)
        for p in range(len(pairs)):
            chunk = slice(p * per, (p + 1) * per)
            naive_excluded += samples_only_excludes_one(
                comparison.samples_a[chunk], comparison.samples_b[chunk], rng
            )
            naive_total += 1
        print(
            f"{i + 1:>3} {comparison.ratio:7.4f} [{lo:.4f}, {hi:.4f}]  "
            + " ".join(f"{r:.3f}" for r in pairs)
            + f"  cpu {comparison.cpu_estimate.ratio:.4f}",
            flush=True,
        )
    worst = max(abs(r - 1) for r in ratios)
    print(
        f"mean {statistics.mean(ratios):.4f}  sd {statistics.stdev(ratios):.4f}  "
        f"range [{min(ratios):.4f}, {max(ratios):.4f}]  worst |B/A - 1| = {worst:.2%} (target <= 2%)"
    )
    print(f"CI excludes 1.0 in {excluded}/{runs} comparisons (expected ~5%)")
    cpu_worst = max(abs(r - 1) for r in cpu_ratios)
    print(
        f"thread CPU time (cpu_ratio): mean {statistics.mean(cpu_ratios):.4f}  sd {statistics.stdev(cpu_ratios):.4f}"
        f"  range [{min(cpu_ratios):.4f}, {max(cpu_ratios):.4f}]  worst {cpu_worst:.2%};"
        f" CI excludes 1.0 in {cpu_excluded}/{runs}"
    )
    print(
        f"a CI from one session pair's samples alone would exclude 1.0 in {naive_excluded}/{naive_total} pairs"
    )


if __name__ == "__main__":
    main()
