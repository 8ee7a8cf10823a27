"""Repeatability: the same model profiled as 5 separate runs (each a fresh `latbench profile`
process), against 5 plain fixed loops of 100 runs. Prints the CV of the reported medians for
both and how many iterations the adaptive stop used. Target: CV of latbench's medians <= 2%.

    .venv/bin/python bench/repeatability.py [--model fastvit_t8] [--runs 5] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from _artifacts import artifact

from devices.ort import session_options
from devices.settings import parse_settings

LATBENCH = str(Path(sys.executable).with_name("latbench"))


def profile_once(model: str, threads: int, max_seconds: float) -> dict:
    cmd = [
        LATBENCH,
        "profile",
        model,
        "--threads",
        str(threads),
        "--max-seconds",
        str(max_seconds),
        "--json",
    ]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def fixed_loop(path: Path, threads: int, runs: int = 100) -> float:
    """The new user's method: a fresh session, 10 warm-up runs, median of 100."""
    session = ort.InferenceSession(str(path), session_options(parse_settings({"threads": threads})),
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    node = session.get_inputs()[0]
    feed = {node.name: np.random.default_rng(0).standard_normal(node.shape, dtype=np.float32)}
    for _ in range(10):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fastvit_t8")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="10 s sampling cap per profile")
    args = parser.parse_args()
    path = artifact(args.model)
    ours, cpu, loops, iters, met, others = [], [], [], [], [], []
    for _ in range(args.runs):  # alternate the two methods so drift hits both alike
        doc = profile_once(args.model, args.threads, 10.0 if args.quick else 30.0)
        ours.append(doc["latency_ms"]["median"])
        cpu.append(doc["cpu_ms"]["median"] if doc["cpu_ms"] else float("nan"))
        iters.append(doc["latency_ms"]["n"] + doc["warmup_iters"])
        met.append(doc["target_met"])
        others.append(doc["host_load"]["others_cpu_pct"])
        loops.append(fixed_loop(path, args.threads))
    print(f"model {args.model}, {args.threads} thread(s), {args.runs} separate runs each")
    print("latbench medians ms: " + " ".join(f"{v:.3f}" for v in ours))
    print("fixed 100-run loop medians ms: " + " ".join(f"{v:.3f}" for v in loops))
    print(f"CV of medians: latbench {cv(ours):.2%} (target <= 2%), fixed loop {cv(loops):.2%}")
    print(f"CV of the thread CPU-time medians (cpu_ms, single thread): {cv(cpu):.2%}")
    print(
        f"max/min of medians: latbench {max(ours) / min(ours):.3f}, fixed loop {max(loops) / min(loops):.3f}"
    )
    print(
        f"iterations used by latbench (warm-up + samples): {iters} (mean {statistics.mean(iters):.0f})"
        f" vs fixed loop 110 (10 warm-up + 100); precision target met in {sum(met)}/{len(met)}"
    )
    print(
        "other processes' CPU use during each latbench run: "
        + " ".join(f"{o:.0f}%" for o in others)
    )


if __name__ == "__main__":
    main()
