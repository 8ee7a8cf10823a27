"""CoreML conversion per model, both capture paths side by side: seconds, outcome, ML program ops.

    .venv/bin/python bench/coreml_convert.py                 # smallest model of each seed family
    .venv/bin/python bench/coreml_convert.py --all           # every variant of the seed families
    .venv/bin/python bench/coreml_convert.py fastvit_t8 --precision fp32

Seconds cover capture + ct.convert + save (the model is built and reparameterized beforehand,
random weights). Ops: ML program ops without consts, per path. Figures depend on machine
load: compare the two columns of one row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from exporters.zoo.seeds import FAMILY_PATTERNS, SMALLEST


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--all", action="store_true", help="every variant of the seed families")
    parser.add_argument("--precision", default="fp16", choices=("fp16", "fp32"))
    args = parser.parse_args()

    import torch
    from timm.utils import reparameterize_model

    from exporters import coreml
    from exporters.formats import Precision
    from exporters.spec import parse_spec
    from exporters.zoo import build, list_models, resolve

    torch.set_num_threads(1)
    names = args.models or (
        [n for pattern in FAMILY_PATTERNS for n in list_models(pattern)] if args.all else SMALLEST
    )
    labels = [label for label, _ in coreml.CAPTURES]
    print(
        f"{'model':18} {'input':16} "
        + " ".join(f"{label + ' s':>14}" for label in labels)
        + "  ops ("
        + "/".join(labels)
        + ")  failures"
    )
    for name in names:
        resolved = resolve(parse_spec(name))
        model = reparameterize_model(build(resolved)).eval()
        example = torch.randn(*resolved.input.shape)
        cells, failures, ops = [], [], []
        for label, capture in coreml.CAPTURES:
            with tempfile.TemporaryDirectory() as scratch:
                dest = Path(scratch) / "model.mlpackage"
                started = time.perf_counter()
                failure = coreml.convert_and_save(
                    label, capture, model, example, Precision(args.precision), dest
                )
                seconds = time.perf_counter() - started
                ops.append("-" if failure else str(coreml.inspect_package(dest)["ops"]))
            cells.append(f"{seconds:>13.1f}{'!' if failure else ' '}")
            if failure:
                failures.append(f"{label}: op {failure.op!r}: {failure.message[:90]}")
        shape = "x".join(map(str, resolved.input.shape))
        row = f"{name:18} {shape:16} " + " ".join(cells) + f"  {'/'.join(ops):>9}  "
        print(row + " | ".join(failures), flush=True)
    print("! = that path failed (seconds until the failure)")


if __name__ == "__main__":
    main()
