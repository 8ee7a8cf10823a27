"""Fidelity: does latbench's runner report what a bare onnxruntime loop measures by hand?

For each model the same ONNX file is timed by (a) `ort-cpu` with its full protocol and (b) a
plain loop written here from scratch with the session options the runner recorded, alternating
a/b and b/a over several rounds in one process. Each round gives one paired ratio of medians
(a/b); the model's ratio is the median over rounds, so load that drifts between rounds on a shared
host cancels. Also prints the ratio of the minima (insensitive to preemption). Target: the
median ratio within 3% of 1.0.

    .venv/bin/python bench/fidelity.py [--quick] [--models a,b,c] [--threads 1] [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort
from _artifacts import artifact

from devices.ort import options_record
from devices.runner import get_runner
from devices.settings import parse_settings

SEED_MODELS = ("mobileone_s0", "repvit_m0_9", "fastvit_t8", "resnet18")


def bare_loop(path, record: dict, runs: int, warmup: int) -> tuple[float, float]:
    """What a careful engineer writes: explicit options, warm-up, a timed loop, the median."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = record["intra_op_num_threads"]
    opts.inter_op_num_threads = record["inter_op_num_threads"]
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, record["graph_optimization_level"])
    spin = "1" if record["intra_op_spinning"] else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    node = session.get_inputs()[0]
    feed = {node.name: np.random.default_rng(1).standard_normal(node.shape, dtype=np.float32)}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)), float(np.min(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(SEED_MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 models, 8 rounds, 4 s sampling cap")
    args = parser.parse_args()
    models = args.models.split(",")[: 3 if args.quick else None]
    rounds = 8 if args.quick else args.rounds
    settings = {"threads": args.threads, "max_seconds": 4.0 if args.quick else 10.0}
    runner = get_runner("ort-cpu")
    record = options_record(parse_settings(settings), ["CPUExecutionProvider"])
    print(f"threads={args.threads} rounds={rounds} (order alternates each round)")
    print(f"{'model':<16} {'latbench ms':>12} {'bare ms':>9} {'ratio':>7} {'min ratio':>9}  per-round ratios")
    worst = 0.0
    for model in models:
        path = artifact(model)
        ours, bare, mins = [], [], {"latbench": [], "bare": []}
        for r in range(rounds):
            steps = ["latbench", "bare"] if r % 2 == 0 else ["bare", "latbench"]
            for step in steps:
                if step == "latbench":
                    m = runner.measure(path, settings)
                    assert all(m.settings[key] == value for key, value in record.items())
                    ours.append(m.latency_ms.median)
                    mins["latbench"].append(m.latency_ms.min)
                else:
                    median, fastest = bare_loop(path, record, 100, 20)
                    bare.append(median)
                    mins["bare"].append(fastest)
        paired = [o / b for o, b in zip(ours, bare)]
        ratio = statistics.median(paired)
        min_ratio = min(mins["latbench"]) / min(mins["bare"])
        worst = max(worst, abs(ratio - 1))
        per_round = " ".join(f"{r:.3f}" for r in paired)
        print(f"{model:<16} {statistics.median(ours):12.3f} {statistics.median(bare):9.3f} {ratio:7.3f} "
              f"{min_ratio:9.3f}  {per_round}", flush=True)
    print(f"worst |ratio - 1| = {worst:.1%} (target <= 3%)")


if __name__ == "__main__":
    main()
