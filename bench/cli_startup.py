"""Start-up time of the `latbench` command: `--help`, `models PATTERN` and a misspelt model name
(all answered without importing torch: see exporters/zoo/timm_models.py's index), each run in a
fresh interpreter as a user runs it, with the host load beside every figure.

    python bench/cli_startup.py            # 7 runs of each
    python bench/cli_startup.py --quick    # 1 run of each: proves it runs
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CASES = {
    "--help": ["--help"],
    "models 'mobileone*'": ["models", "mobileone*"],
    "profile resnet1800 (misspelt)": ["profile", "resnet1800"],
    "compare resnet18 resnet1800": ["compare", "resnet18", "resnet1800"],
    "gate --metric cpuu": ["gate", "--candidate", "resnet18", "--metric", "cpuu"],
}


def _time(args: list[str], data_dir: str) -> tuple[float, int]:
    env = {**os.environ, "LATBENCH_DATA_DIR": data_dir}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", *args], env=env, capture_output=True, check=False
    )
    return time.perf_counter() - start, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of each")
    parser.add_argument("--runs", type=int, default=7)
    options = parser.parse_args()
    runs = 1 if options.quick else options.runs
    print(f"{os.cpu_count()} CPUs; {runs} run(s) each in a fresh interpreter")
    print(f"{'command':34} {'median s':>9} {'min s':>7} {'exit':>4}  load (1 min) before/after")
    with tempfile.TemporaryDirectory() as data_dir:
        for label, args in CASES.items():
            before = os.getloadavg()[0]
            timed = [_time(args, data_dir) for _ in range(runs)]
            seconds = [t for t, _ in timed]
            after = os.getloadavg()[0]
            print(
                f"{label:34} {statistics.median(seconds):9.2f} {min(seconds):7.2f} "
                f"{timed[-1][1]:4d}  {before:.2f} / {after:.2f}"
            )


if __name__ == "__main__":
    main()
