"""Error rates of `latbench gate` on this host, for --metric wall and --metric cpu.

* A/A: the same model as baseline and candidate (two separately loaded sessions) gated N times;
  every regression verdict is a false failure (target <= 1%).
* Detection: a candidate truly ~10% slower, built honestly as the same network with one more
  block, gated M times; the share of regression verdicts (target >= 95%). Its true ratio is
  measured separately, over many more session pairs, and printed.
* Mean wall time per gate (comparison, extra session pairs and decision; the one-time build is
  printed apart, since CI caches it by content) for a model of a few ms (target <= 60 s).

The models are a `python:` source defined below, so the bench also runs the path a user's own
model code takes. Host load is printed beside every figure: on a shared host it moves them.

    .venv/bin/python bench/gate_error_rates.py [--quick] [--aa 50] [--detect 20] [--metric wall cpu]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn

from devices.runner import get_runner
from devices.settings import parse_settings
from exporters.formats import DeviceClass, ExportFormat
from service import pipeline
from service.cli import data_dir, host_lock_path
from service.gate import Verdict
from service.gate.run import Budget, Pair, run_gate

WIDTH, SIDE, BLOCKS = 24, 56, 10


class Plain(nn.Module):
    """Stem, ``blocks`` equal 3x3 conv+BN+ReLU blocks, head: one more block adds ~1/blocks."""

    def __init__(self, blocks: int = BLOCKS) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, WIDTH, 3, padding=1), nn.BatchNorm2d(WIDTH))
        self.body = nn.Sequential(
            *[
                nn.Sequential(nn.Conv2d(WIDTH, WIDTH, 3, padding=1), nn.BatchNorm2d(WIDTH),
                              nn.ReLU())
                for _ in range(blocks)
            ]
        )  # fmt: skip
        self.head = nn.Linear(WIDTH, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.stem(x)).mean((2, 3)))


def build(blocks: int = BLOCKS) -> nn.Module:
    return Plain(blocks)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} on {os.cpu_count()} cores"


def side(blocks: int):
    ref = {"model": "python:gate_error_rates:build", "kwargs": {"blocks": blocks},
           "input": {"height": SIDE, "width": SIDE}}  # fmt: skip
    return pipeline.materialize(
        ref, ExportFormat.ONNX, store_root=data_dir(), lock_path=host_lock_path()
    )


def settings_for(metric: str):
    """What `latbench gate --metric ...` uses: one intra-op thread for cpu, defaults for wall."""
    return parse_settings({"threads": 1} if metric == "cpu" else {})


def true_ratio(base, cand, metric: str, reloads: int) -> float:
    runner = get_runner("ort-cpu")
    settings = settings_for(metric).model_copy(update={"ab_reloads": reloads})
    result = runner.compare(base.artifact.path, cand.artifact.path, settings)
    estimate = result.cpu_estimate if metric == "cpu" else result.estimate
    lo, hi = estimate.ci95
    print(f"  true ratio ({metric}, {reloads} session pairs): {estimate.ratio:.4f} "
          f"[{lo:.4f}, {hi:.4f}]  median A {result.a.median:.3f} ms  ({load()})")  # fmt: skip
    return estimate.ratio


def gates(base, cand, metric: str, count: int, label: str) -> tuple[dict[Verdict, int], float]:
    verdicts = dict.fromkeys(Verdict, 0)
    seconds = []
    pair = Pair(label, DeviceClass.of_this_cpu(), base, cand, 0.05)
    for i in range(count):
        started = time.perf_counter()
        outcome = run_gate([pair], settings=settings_for(metric), metric=metric, budget=Budget())
        seconds.append(time.perf_counter() - started)
        result = outcome.pairs[0]
        verdicts[result.decision.verdict] += 1
        lo, hi = result.decision.ci95
        print(f"  {label} {i + 1:>3}/{count}: {result.decision.verdict.name.lower():<12} "
              f"ratio {result.decision.ratio:.4f} [{lo:.4f}, {hi:.4f}] "
              f"{result.comparison.reloads:>2} pairs {seconds[-1]:5.1f} s  ({load()})",
              flush=True)  # fmt: skip
    return verdicts, sum(seconds) / len(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aa", type=int, default=50, help="A/A gates per metric")
    parser.add_argument("--detect", type=int, default=20, help="gates of the slower candidate")
    parser.add_argument("--metric", nargs="+", default=["wall", "cpu"], choices=["wall", "cpu"])
    parser.add_argument("--quick", action="store_true", help="4 A/A and 3 detection gates")
    args = parser.parse_args()
    aa, detect = (4, 3) if args.quick else (args.aa, args.detect)
    started = time.perf_counter()
    base, cand = side(BLOCKS), side(BLOCKS + 1)
    print(f"built both sides in {time.perf_counter() - started:.1f} s (once; cached by content)")
    summary = []
    for metric in args.metric:
        print(f"--metric {metric}")
        ratio = true_ratio(base, cand, metric, reloads=24 if args.quick else 40)
        aa_verdicts, aa_seconds = gates(base, base, metric, aa, "A/A")
        hit_verdicts, hit_seconds = gates(base, cand, metric, detect, "+1 block")
        false = aa_verdicts[Verdict.REGRESSION]
        hits = hit_verdicts[Verdict.REGRESSION]
        mean_seconds = (aa_seconds * aa + hit_seconds * detect) / (aa + detect)
        summary.append(
            f"{metric:>4}: A/A false failures {false}/{aa} = {false / aa:.1%} (target <= 1%; "
            f"inconclusive {aa_verdicts[Verdict.INCONCLUSIVE]}) | detection of x{ratio:.3f} "
            f"{hits}/{detect} = {hits / detect:.1%} (target >= 95%; inconclusive "
            f"{hit_verdicts[Verdict.INCONCLUSIVE]}) | mean {mean_seconds:.1f} s per gate "
            f"(target <= 60 s) | {load()}"
        )
    print("\n".join(["summary:", *summary]))


if __name__ == "__main__":
    main()
