"""Does A/B mode's ratio estimate the ratio of the two models' deployed-default latencies?

A/B mode interleaves two loaded sessions call by call, so it turns intra-op spinning off (two
spinning pools steal each other's cores). A user wants B/A as their application would see it,
with onnxruntime's defaults (spinning on). For each pair, in one process:

* `Runner.compare(A, B)` with default settings (all physical cores, spinning off by A/B mode);
* the deployed-default ratio: bare default-options loops (``fidelity.bare_default_loop``) of A
  and of B, one session at a time, alternating A-first / B-first over ``--rounds`` rounds; the
  median of the per-round ratios B/A, with its spread.

The two should agree within the spread of the second. Host load is printed beside each pair.

    .venv/bin/python bench/ab_defaults.py [--pairs a:b,c:d] [--rounds 10] [--threads 0]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from _artifacts import artifact
from fidelity import bare_default_loop

from devices.runner import get_runner

PAIRS = "mobileone_s0:fastvit_t8,repvit_m0_9:fasternet_t0,mobilevitv2_050:mobilevit_xxs"


def default_ratio(path_a, path_b, threads: int, rounds: int, runs: int) -> np.ndarray:
    ratios = []
    for r in range(rounds):
        first, second = (path_a, path_b) if r % 2 == 0 else (path_b, path_a)
        got = {first: bare_default_loop(first, threads, runs)}
        got[second] = bare_default_loop(second, threads, runs)
        ratios.append(got[path_b] / got[path_a])
    return np.array(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default=PAIRS)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0, help="0: onnxruntime's default")
    args = parser.parse_args()
    runner = get_runner("ort-cpu")
    settings = {"threads": args.threads} if args.threads else {}
    print(f"{'A':<16} {'B':<16} {'A/B mode B/A [95% CI]':>26} {'defaults B/A':>12} "
          f"{'min-max':>13} {'A/B ÷ def':>9} {'load':>9}")  # fmt: skip
    worst = 0.0
    for pair in args.pairs.split(","):
        a, b = pair.split(":")
        path_a, path_b = artifact(a), artifact(b)
        load0 = os.getloadavg()[0]
        comparison = runner.compare(path_a, path_b, settings)
        ratios = default_ratio(path_a, path_b, args.threads, args.rounds, args.runs)
        deployed = float(np.median(ratios))
        lo, hi = comparison.ci95
        agreement = comparison.ratio / deployed
        worst = max(worst, abs(agreement - 1))
        print(f"{a:<16} {b:<16} {comparison.ratio:8.3f} [{lo:.3f}, {hi:.3f}]       {deployed:12.3f} "
              f"{ratios.min():6.3f}-{ratios.max():<6.3f} {agreement:9.3f} "
              f"{load0:4.1f}-{os.getloadavg()[0]:<4.1f}", flush=True)  # fmt: skip
    print(f"worst |A/B ratio ÷ default-options ratio - 1| = {worst:.1%}")


if __name__ == "__main__":
    main()
