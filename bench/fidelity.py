"""Fidelity: does latbench's runner report what a bare onnxruntime loop measures by hand?

The same ONNX file is timed by `ort-cpu` and by a plain loop written here from scratch with the
session options the runner records, in one process, two ways:

* per run: latbench's session (its input pool, its timing) and the bare session alternate call
  by call in ABBA order, so both see the same background load; ratio of medians.
* whole protocol: `Runner.measure` (warm-up until steady, adaptive stop) and a bare
  "20 warm-up + 100 timed runs" loop alternate as whole measurements, order swapped each round;
  the median of the per-round ratios. On a shared host this also carries the load changes
  between rounds, so it is noisier than the per-run figure.

Target: within 3% of 1.0. Also prints the ratio of the minima (insensitive to preemption).

    .venv/bin/python bench/fidelity.py [--quick] [--models a,b,c] [--threads 1] [--rounds 6]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
from _artifacts import artifact

from devices.ort import options_record
from devices.runner import get_runner
from devices.sampling import WarmupPolicy, interleave, warm_up
from devices.settings import parse_settings

SEED_MODELS = ("mobileone_s0", "repvit_m0_9", "fastvit_t8", "resnet18")


def bare_session(path, record: dict) -> Callable[[], float]:
    """What a careful engineer writes: explicit options, one random input, perf_counter around run."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = record["intra_op_num_threads"]
    opts.inter_op_num_threads = record["inter_op_num_threads"]
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, record["graph_optimization_level"]
    )
    spin = "1" if record["intra_op_spinning"] else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    node = session.get_inputs()[0]
    feed = {node.name: np.random.default_rng(1).standard_normal(node.shape, dtype=np.float32)}

    def run() -> float:
        start = time.perf_counter()
        session.run(None, feed)
        return (time.perf_counter() - start) * 1e3

    return run


def per_run(runner, path, settings, record, blocks: int) -> tuple[float, float, float]:
    ours = runner.open(path, settings)
    bare = bare_session(path, record)
    for run in (ours.run, bare):
        warm_up(run, WarmupPolicy())
    a, b = interleave(ours.run, bare, blocks)
    ours.close()
    return float(np.median(a)), float(np.median(b)), min(a) / min(b)


def whole_protocol(runner, path, settings, record, rounds: int) -> list[float]:
    ratios = []
    for r in range(rounds):
        results = {}
        for step in ["latbench", "bare"] if r % 2 == 0 else ["bare", "latbench"]:
            if step == "latbench":
                m = runner.measure(path, settings)
                assert all(m.settings[key] == value for key, value in record.items())
                results[step] = m.latency_ms.median
            else:
                run = bare_session(path, record)
                for _ in range(20):
                    run()
                results[step] = float(np.median([run() for _ in range(100)]))
        ratios.append(results["latbench"] / results["bare"])
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(SEED_MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--blocks", type=int, default=100, help="ABBA blocks of the per-run comparison"
    )
    parser.add_argument("--quick", action="store_true", help="3 models, 4 rounds, 4 s sampling cap")
    args = parser.parse_args()
    models = args.models.split(",")[: 3 if args.quick else None]
    rounds = 4 if args.quick else args.rounds
    settings = parse_settings({"threads": args.threads, "max_seconds": 4.0 if args.quick else 10.0})
    runner = get_runner("ort-cpu")
    record = options_record(settings, ["CPUExecutionProvider"])
    print(
        f"threads={args.threads}, spinning off; per run: {args.blocks} ABBA blocks; whole protocol: {rounds} rounds"
    )
    print(
        f"{'model':<14} {'latbench ms':>11} {'bare ms':>8} {'per-run':>8} {'min':>6} {'protocol':>9}  per-round"
    )
    worst = 0.0
    for model in models:
        path = artifact(model)
        ours, bare, min_ratio = per_run(runner, path, settings, record, args.blocks)
        rounds_ratios = whole_protocol(runner, path, settings, record, rounds)
        worst = max(worst, abs(ours / bare - 1))
        print(f"{model:<14} {ours:11.3f} {bare:8.3f} {ours / bare:8.3f} {min_ratio:6.3f} "
              f"{statistics.median(rounds_ratios):9.3f}  " + " ".join(f"{r:.3f}" for r in rounds_ratios),
              flush=True)  # fmt: skip
    print(f"worst per-run |ratio - 1| = {worst:.1%} (target <= 3%)")


if __name__ == "__main__":
    main()
