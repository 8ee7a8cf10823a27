"""Coverage: how much of timm does latbench export? A fixed-seed random sample of timm
architectures, each exported to ONNX and CoreML through latbench's own pipeline (build with
random weights, reparameterize + proof, export, parity where a runtime exists), one child process
per model so a crash or a hang costs one row. Prints the pass rate per format and each failure's
first cause; the seed families' smallest variants are run as a separate group (they must stay 100%).

Size budget: models above ``--max-params`` million parameters or with a default input side above
``--max-side`` are skipped (listed, not counted): exporting them takes minutes each on 2 cores.

    .venv/bin/python bench/coverage.py [--seed 13] [--sample 40] [--max-params 30] [--json out]
        [--resume]   # a long sweep on a shared host can be stopped and continued
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from exporters.formats import ExportFormat

FORMATS = (ExportFormat.ONNX, ExportFormat.COREML)


def size_of(name: str) -> tuple[float, int]:
    """(million parameters, default input side), built on the meta device: no memory, no time."""
    import timm
    import torch
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    side = max(cfg.input_size[1:]) if cfg is not None else 224
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    return sum(p.numel() for p in model.parameters()) / 1e6, side


def draw(seed: int, count: int, max_params: float, max_side: int) -> tuple[list, list]:
    """The first ``count`` models within the budget, in a seeded shuffle of ``timm.list_models``."""
    import timm

    names = sorted(timm.list_models())
    chosen, skipped = [], []
    for name in random.Random(seed).sample(names, len(names)):
        if len(chosen) == count:
            break
        try:
            params, side = size_of(name)
        except Exception as exc:  # noqa: BLE001 - a model timm cannot build is a coverage failure
            chosen.append((name, float("nan"), 0, f"{type(exc).__name__}: {exc}"[:200]))
            continue
        row = (name, params, side, None)
        (chosen if params <= max_params and side <= max_side else skipped).append(row)
    return sorted(chosen, key=lambda row: (row[1] != row[1], row[1])), skipped


def export_one(name: str) -> dict:
    """Child process: export ``name`` to every format in a throw-away store."""
    from exporters.artifacts import ArtifactStore
    from exporters.errors import LatbenchError
    from exporters.export import export_model
    from exporters.spec import ModelSpec

    with tempfile.TemporaryDirectory(prefix="latbench-cov-") as tmp:
        started = time.perf_counter()
        try:
            report = export_model(
                ModelSpec(model=name, formats=FORMATS), store=ArtifactStore(Path(tmp))
            )
        except LatbenchError as exc:  # the build failed: every format fails with it
            return {fmt.value: f"build: {exc}" for fmt in FORMATS} | {"seconds": 0.0}
        out: dict = {"seconds": round(time.perf_counter() - started, 1)}
        for fmt in FORMATS:
            entry = report.artifact(fmt)
            out[fmt.value] = None if entry and entry.ok else (entry.error if entry else "missing")
            if entry and entry.ok and entry.export_path:
                out[f"{fmt.value}_path"] = entry.export_path
        return out


def run_child(name: str, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--one", name]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=os.environ, check=False
        )
    except subprocess.TimeoutExpired:
        return {fmt.value: f"timeout after {timeout:.0f} s" for fmt in FORMATS}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        cause = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return {fmt.value: f"child exited {done.returncode}: {cause}" for fmt in FORMATS}
    return json.loads(lines[-1])


def first_cause(error: str) -> str:
    return error.split("; ")[0][:160]


def report(title: str, rows: list[tuple[str, dict]]) -> None:
    print(f"\n== {title}: {len(rows)} models")
    for fmt in FORMATS:
        passed = sum(1 for _, r in rows if r.get(fmt.value) is None)
        print(f"{fmt.value:>7}: {passed}/{len(rows)} = {passed / max(len(rows), 1):.1%}")
        for name, r in rows:
            if r.get(fmt.value) is not None:
                print(f"    FAIL {name}: {first_cause(r[fmt.value])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--sample", type=int, default=40)
    parser.add_argument("--max-params", type=float, default=30.0, help="million parameters")
    parser.add_argument("--max-side", type=int, default=256, help="default input side, pixels")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per model")
    parser.add_argument("--no-seeds", action="store_true", help="skip the seed-family group")
    parser.add_argument("--json", type=Path, help="also write every row here")
    parser.add_argument(
        "--resume", action="store_true", help="keep the rows already in --json, run the rest"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(export_one(args.one)), flush=True)
        return
    from exporters.zoo.seeds import SMALLEST

    chosen, skipped = draw(args.seed, args.sample, args.max_params, args.max_side)
    print(f"seed {args.seed}, sample {args.sample}, budget <= {args.max_params:g}M params and "
          f"<= {args.max_side} px; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print("sample: " + ", ".join(name for name, *_ in chosen))
    print("skipped (over budget): " + ", ".join(f"{n} ({p:.0f}M, {s}px)" for n, p, s, _ in skipped))
    groups = {"timm sample": [(n, e) for n, _, _, e in chosen]}
    if not args.no_seeds:
        groups["seed families (smallest variant)"] = [(n, None) for n in SMALLEST]
    results: dict[str, list[tuple[str, dict]]] = {}
    if args.resume and args.json and args.json.exists():
        results = {
            title: [tuple(row) for row in rows]
            for title, rows in json.loads(args.json.read_text()).items()
        }
    for title, names in groups.items():
        rows = results.setdefault(title, [])
        done = {name for name, _ in rows}
        for name, error in names:
            if name in done:
                continue
            row = (
                {fmt.value: f"build: {error}" for fmt in FORMATS}
                if error
                else run_child(name, args.timeout)
            )
            rows.append((name, row))
            status = " ".join(
                f"{f.value}={'ok' if row.get(f.value) is None else 'FAIL'}" for f in FORMATS
            )
            print(f"  {name:<40} {status}  {row.get('seconds', '-')} s  load {os.getloadavg()[0]:.2f}",
                  flush=True)  # fmt: skip
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
    for title, rows in results.items():
        report(title, rows)


if __name__ == "__main__":
    main()
