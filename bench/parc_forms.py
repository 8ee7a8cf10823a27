"""ParC spatial vs Fast-ParC (FFT) latency on this CPU, per feature size, and the crossover.

One ParC-H layer (C channels, n x n input, random weights) is exported in each form and the two
artifacts are timed side by side by latbench's runner (``Runner.compare``: fresh session pairs,
ABBA-interleaved runs, ratio CI across pairs). Per runner it prints spatial and FFT medians, the
FFT/spatial ratio with its 95% CI, the faster form, and the crossover: the smallest size from which
FFT wins at every larger measured size. With ``--model`` it then picks the form of every ParC layer
of that model the same way and prints the plan.

    .venv/bin/python bench/parc_forms.py [--runners ort-cpu torch-cpu] [--sizes 7 14 28 56 112]
        [--channels 64] [--threads 1] [--reloads 3] [--blocks 6] [--model parcnet_xs] [--json F]
        [--quick]
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import torch

from devices.runner import get_runner
from devices.settings import MeasureSettings
from exporters.zoo import get_model
from exporters.zoo.native.parc_select import FormPlan, FormTiming, choose_forms, crossover, sweep


def print_sweep(runner: str, timings: list[FormTiming]) -> None:
    print(f"\n{runner}: one ParC-H layer, C={timings[0].shape.channels}, input n x n")
    print(f"{'n':>5} {'spatial ms':>11} {'fft ms':>10} {'fft/spatial':>12} {'95% CI':>17}  faster")
    for t in timings:
        ci = f"[{t.ci95[0]:.3g}, {t.ci95[1]:.3g}]"
        print(
            f"{t.shape.size:>5} {t.spatial_ms:>11.4f} {t.fft_ms:>10.4f} {t.ratio:>12.3g} "
            f"{ci:>17}  {t.faster}"
        )
        if t.fft_error:
            print(f"      {t.fft_error}")
    found, sizes = crossover(timings), [t.shape.size for t in timings]
    print(
        f"crossover: n = {found} (FFT faster from this size on)"
        if found is not None
        else f"crossover: none (FFT wins at no size from {min(sizes)} to {max(sizes)})"
    )


def print_plan(runner: str, model: str, plan: FormPlan) -> None:
    counts = {form: list(plan.forms.values()).count(form) for form in ("spatial", "fft")}
    print(
        f"\n{runner}: {model} form plan: {counts} (crossover among its layer sizes: "
        f"{plan.crossover})"
    )
    for t in plan.timings:
        s = t.shape
        print(
            f"  {s.orientation} C={s.channels:<4} {s.height}x{s.width}: spatial "
            f"{t.spatial_ms:.4f} ms, fft {t.fft_ms:.4f} ms -> {t.faster}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", nargs="+", default=["ort-cpu", "torch-cpu"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[7, 14, 28, 56, 112])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reloads", type=int, default=3, help="fresh session pairs per size")
    parser.add_argument("--blocks", type=int, default=6, help="ABBA blocks per session pair")
    parser.add_argument("--model", help="also choose the form of every ParC layer of this model")
    parser.add_argument("--json", type=Path, help="write every timing here")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: sizes 7 14 28, 2 session pairs of 3 blocks"
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.reloads, args.blocks = [7, 14, 28], 2, 3
    torch.set_num_threads(args.threads)
    settings = MeasureSettings(
        threads=args.threads, ab_reloads=args.reloads, ab_blocks=args.blocks, warmup_max_seconds=5.0
    )
    print(
        "random weights; fft/spatial < 1 means Fast-ParC is faster; "
        "a form wins only when the whole CI is on its side"
    )
    record: dict[str, dict] = {}
    for name in args.runners:
        runner = get_runner(name)
        fmt = runner.formats[0]
        compare = partial(runner.compare, settings=settings)
        timings = sweep(args.sizes, args.channels, compare, fmt=fmt)
        print_sweep(f"{name} ({fmt.value}, {args.threads} thread)", timings)
        record[name] = {
            "device": runner.describe(settings).to_dict(),
            "sweep": FormPlan({}, timings, crossover(timings), fmt.value).to_dict(),
        }
        if args.model:
            entry = get_model(args.model)
            model = entry.builder().eval()
            plan = choose_forms(model, torch.randn(1, *entry.input_size), compare, fmt=fmt)
            print_plan(name, args.model, plan)
            record[name]["plan"] = plan.to_dict()
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
