"""int8 on this CPU: for the six seed families' smallest models and a fixed-seed random sample of
timm models within the size budget (``bench/coverage.py``'s draw), the int8 export coverage,
the share of MACs onnxruntime runs in int8 kernels, the float islands, the SQNR against the
float deploy form, and the A/B latency ratio int8/fp32 with its 95% CI at 1 thread and at all
cores (``Runner.compare``: interleaved ABBA on fresh session pairs). The CPU's int8 capability
(VNNI / AMX, dot product / i8mm) and the host load are printed beside the figures: the ratio
means little on a busy host, and nothing about a CPU with other int8 instructions.

One child process per model (a crash or a hang costs one row); artifacts are cached in
``--store`` so a rerun only measures.

    .venv/bin/python bench/int8.py [--seed 13] [--sample 20] [--max-params 30] [--json out]
    .venv/bin/python bench/int8.py --quick      # one seed model, one sampled, short A/B
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.coverage import draw
from devices.conditions import int8_capability
from exporters.formats import ExportFormat, Precision

CNN_SEEDS = ("fastvit_t8", "repvit_m0_9", "fasternet_t0", "mobileone_s0")  # no attention


def measure_one(name: str, store: Path, reloads: int, blocks: int) -> dict:
    """Child process: export fp32 and int8 ONNX of ``name``, then A/B them at 1 and all cores."""
    from devices.runner import get_runner
    from devices.settings import MeasureSettings
    from exporters.artifacts import ArtifactStore
    from exporters.errors import LatbenchError
    from exporters.export import export_model
    from exporters.spec import ModelSpec

    paths, row = {}, {"model": name}
    for precision in (Precision.FP32, Precision.INT8):
        spec = ModelSpec(model=name, formats=(ExportFormat.ONNX,), precision=precision)
        try:
            entry = export_model(spec, store=ArtifactStore(store)).artifacts[0]
        except LatbenchError as exc:
            return {**row, "error": f"build: {exc}"[:300]}
        if not entry.ok:
            return {**row, "error": f"{precision.value}: {entry.error}"[:300]}
        paths[precision] = Path(entry.path)
        if entry.quantization:
            stated = entry.quantization
            row |= {k: stated[k] for k in ("int8_mac_fraction", "sqnr_db", "cosine")}
            row["islands"] = [f"{i['op']}×{i['nodes']}" for i in stated["float_islands"][:4]]
    runner = get_runner("ort-cpu")
    for label, threads in (("1t", 1), ("all", os.cpu_count() or 1)):
        settings = MeasureSettings(
            threads=threads, ab_reloads=reloads, ab_blocks=blocks, warmup_max_seconds=2.0
        )
        comparison = runner.compare(paths[Precision.FP32], paths[Precision.INT8], settings)
        row[f"ratio_{label}"] = round(comparison.ratio, 4)
        row[f"ci_{label}"] = [round(x, 4) for x in comparison.ci95]
        row[f"fp32_ms_{label}"] = round(comparison.a.median, 3)
        row[f"load_{label}"] = round(comparison.host_load.get("others_cpu_pct", float("nan")), 1)
    return row


def run_child(name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--one", name, "--store", str(args.store),
           "--reloads", str(args.reloads), "--blocks", str(args.blocks)]  # fmt: skip
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"model": name, "error": f"timeout after {args.timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        cause = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return {"model": name, "error": f"child exited {done.returncode}: {cause}"}
    return json.loads(lines[-1])


def show(row: dict) -> str:
    if "error" in row:
        return f"  {row['model']:<34} FAIL {row['error'][:150]}"
    ratios = "  ".join(
        f"{t}: {row[f'ratio_{t}']:.3f} [{row[f'ci_{t}'][0]:.3f}, {row[f'ci_{t}'][1]:.3f}]"
        f" (fp32 {row[f'fp32_ms_{t}']} ms, others {row[f'load_{t}']}% CPU)"
        for t in ("1t", "all")
    )
    return (
        f"  {row['model']:<34} int8 MACs {row['int8_mac_fraction']:.1%}  SQNR "
        f"{row['sqnr_db']:.1f} dB  islands {','.join(row['islands']) or '-'}\n"
        f"  {'':<34} int8/fp32 {ratios}"
    )


def summary(title: str, rows: list[dict]) -> None:
    ok = [r for r in rows if "error" not in r]
    print(f"\n== {title}: int8 export {len(ok)}/{len(rows)} = {len(ok) / max(len(rows), 1):.0%}")
    if ok:
        fractions = [r["int8_mac_fraction"] for r in ok]
        print(f"   int8 MAC fraction median {median(fractions):.1%}, min {min(fractions):.1%}; "
              f"SQNR median {median(r['sqnr_db'] for r in ok):.1f} dB; int8/fp32 median "
              f"1 thread {median(r['ratio_1t'] for r in ok):.3f}, "
              f"all cores {median(r['ratio_all'] for r in ok):.3f}")  # fmt: skip
    cnn = [r for r in ok if r["model"] in CNN_SEEDS]
    if cnn:
        print("   CNN seeds int8 MAC fraction: "
              + ", ".join(f"{r['model']} {r['int8_mac_fraction']:.1%}" for r in cnn))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--sample", type=int, default=20)
    parser.add_argument("--max-params", type=float, default=30.0, help="million parameters")
    parser.add_argument("--max-side", type=int, default=256, help="default input side, pixels")
    parser.add_argument("--reloads", type=int, default=8, help="A/B session pairs (even)")
    parser.add_argument("--blocks", type=int, default=15, help="ABBA blocks per pair")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per model")
    parser.add_argument("--store", type=Path, default=Path(tempfile.gettempdir()) / "int8-bench")
    parser.add_argument("--quick", action="store_true", help="1 seed + 1 sampled, short A/B")
    parser.add_argument("--json", type=Path, help="also write every row here")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.store, args.reloads, args.blocks)), flush=True)
        return
    from exporters.zoo.seeds import SMALLEST

    seeds = list(SMALLEST)
    if args.quick:
        seeds, args.sample, args.reloads, args.blocks = ["mobileone_s0"], 1, 2, 3
    capability = int8_capability()
    print(f"int8 capability: {capability.get('value')} (dot product: "
          f"{capability.get('dot_product')}, {capability.get('source')}); "
          f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    chosen, skipped = draw(args.seed, args.sample, args.max_params, args.max_side)
    print(f"seed {args.seed}, sample {args.sample} within {args.max_params:g}M params, "
          f"{args.max_side} px; skipped over budget: {len(skipped)}")  # fmt: skip
    results: dict[str, list[dict]] = {}
    groups = {"seed families (smallest)": seeds, "timm sample": [n for n, *_ in chosen]}
    for title, names in groups.items():
        rows = results.setdefault(title, [])
        print(f"\n{title}")
        for name in names:
            rows.append(run_child(name, args))
            print(show(rows[-1]) + f"  [load {os.getloadavg()[0]:.2f}]", flush=True)
            if args.json:
                args.json.write_text(json.dumps({"capability": capability, **results}, indent=1))
    for title, rows in results.items():
        summary(title, rows)


if __name__ == "__main__":
    main()
