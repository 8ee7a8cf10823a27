"""Collect the A/A noise of the gate's A/B mode on this host, for the gate's error-rate test.

The same small ONNX network (a stem and 10 conv+ReLU blocks of width 24 at 56x56, a few ms, built
here with onnx.helper) is compared against itself by the real onnxruntime runner with the gate's default settings (all cores, ``--threads`` to
change it), ``--rounds`` times ``--pairs`` fresh session pairs. Every session pair's ratio estimate (wall
clock and thread CPU time) is written with the host load around its round, the date, the host
and the command, to ``tests/data/gate_noise.json``; ``tests/service/test_gate_error_rates.py``
fits its noise model to those ratios. Host load is printed beside every round.

    .venv/bin/python bench/gate_noise.py [--rounds 30] [--pairs 6] [--threads N] [--out tests/data/gate_noise.json] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from devices.runner import get_runner

WIDTH, SIDE, BLOCKS = 24, 56, 10
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "gate_noise.json"


def conv_chain(path: Path, blocks: int = BLOCKS) -> None:
    """A stem conv and ``blocks`` 3x3 conv+ReLU blocks, fixed random weights."""
    rng = np.random.default_rng(0)
    nodes, inits, prev, channels = [], [], "x", 3
    for i in range(blocks + 1):
        w = rng.normal(0, 0.1, (WIDTH, channels, 3, 3)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev, channels = f"r{i}", WIDTH
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIDE, SIDE])
    y = helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, WIDTH, SIDE, SIDE])
    graph = helper.make_graph(nodes, "conv_chain", [x], [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=6, help="session pairs per round")
    parser.add_argument("--threads", type=int, default=None, help="default: the gate's (all)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--quick", action="store_true", help="2 rounds, written to a temp file")
    args = parser.parse_args()
    rounds, out = args.rounds, args.out
    if args.quick:
        rounds, out = 2, Path(tempfile.gettempdir()) / "gate_noise.quick.json"
    runner = get_runner("ort-cpu")
    settings = {"ab_reloads": args.pairs}
    if args.threads is not None:
        settings["threads"] = args.threads
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "conv_chain.onnx"
        conv_chain(model)
        for i in range(rounds):
            load_before = os.getloadavg()[0]
            comparison = runner.compare(model, model, settings)
            load_after = os.getloadavg()[0]
            wall = list(comparison.estimate.estimates)
            cpu = list(comparison.cpu_estimate.estimates) if comparison.cpu_estimate else None
            records.append(
                {
                    "wall": wall,
                    "cpu": cpu,
                    "load1": [load_before, load_after],
                    "median_ms": comparison.a.median,
                }
            )
            print(
                f"round {i + 1:>2}/{rounds}  load {load_before:5.2f}-{load_after:5.2f}  "
                f"median {comparison.a.median:6.3f} ms  wall " + " ".join(f"{r:.3f}" for r in wall),
                flush=True,
            )
    logs = np.log([r for record in records for r in record["wall"]])
    print(
        f"{logs.size} session pairs: log-ratio mean {logs.mean():+.4f} sd {logs.std(ddof=1):.4f}"
        f" worst {np.abs(logs).max():.4f}"
    )
    doc = {
        "how": "bench/gate_noise.py: the same ONNX conv chain (stem + 10 conv+ReLU blocks, "
        f"width {WIDTH}, {SIDE}x{SIDE}) as A and B, ort-cpu runner, threads {args.threads or 'default'}, "
        f"{args.pairs} fresh session pairs per round; one ratio estimate per session pair",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
        },
        "rounds": records,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
