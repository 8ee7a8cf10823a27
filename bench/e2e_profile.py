"""End-to-end time of a cold `POST /profile` (export + measure through the service) against the
same export and measurement called directly in this script, and the time of a cached repeat.

    .venv/bin/python bench/e2e_profile.py [--model mobileone_s0] [--repeats 2] [--quick]

Both sides run the same fixed measurement (a fixed iteration count: the precision target is out of
reach) on a fresh artifact store, each in a fresh process with torch and the zoo already imported
(the direct side in a child process, so no run inherits another's warm caches); the difference is
what the service adds: HTTP, the database, the queue, the worker hand-offs and polling. Sides
alternate (service, direct, service, ...) so that load from other processes biases neither.
Weights are random (latency does not depend on them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.25  # job polling period: finer polling steals the worker thread's GIL time
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import Server


def settings_for(iters: int) -> dict:
    return {
        "threads": 1,
        "target_rel_ci": 0.0001,
        "min_iters": iters,
        "max_iters": iters,
        "max_seconds": 600,
        "warmup_max_iters": 20,
        "warmup_max_seconds": 10,
    }


def direct(model: str, measure: dict, workdir: Path) -> tuple[float, float]:
    """Seconds for export and for measurement, called directly in a fresh child process."""
    import json
    import subprocess

    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--direct-child",
            str(workdir),
            "--model",
            model,
            "--iters",
            str(measure["max_iters"]),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    timing = json.loads(done.stdout.strip().splitlines()[-1])
    return timing["export"], timing["measure"]


def direct_child(model: str, measure: dict, workdir: Path) -> tuple[float, float]:
    from devices.jobs.profile import measure as measure_artifact
    from devices.jobs.profile import runner_name
    from devices.settings import MeasureSettings
    from exporters.formats import DeviceClass, ExportFormat
    from exporters.spec import parse_spec
    from service import pipeline

    spec, lock, fmt = parse_spec(model), workdir / "host.lock", ExportFormat.ONNX
    start = time.perf_counter()
    report = pipeline.export(spec, (fmt,), store_root=workdir, lock_path=lock)
    exported = time.perf_counter()
    measure_artifact(
        Path(report.require(fmt).path),
        runner=runner_name(DeviceClass.of_this_cpu(), fmt),
        settings=MeasureSettings(**measure),
        lock_path=lock,
    )
    return exported - start, time.perf_counter() - exported


def through_service(model: str, measure: dict, workdir: Path) -> tuple[float, float, dict]:
    """Seconds for a cold POST /profile until its result and for a cached repeat, and where the
    cold job's time went (from its own timestamps)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATBENCH_")}
    env.update(
        LATBENCH_DATA_DIR=str(workdir),
        LATBENCH_HOST_LOCK=str(workdir / "host.lock"),
        OMP_NUM_THREADS="1",
    )
    server = Server(env, workdir / "server.log")
    try:
        server.http.get("/models", params={"pattern": model})  # loads torch + zoo, like direct
        body = {"model": model, "formats": ["onnx"], "settings": measure}
        start = time.perf_counter()
        job_id = server.http.post("/profile", json=body).json()["jobs"][0]["id"]
        while (job := server.http.get(f"/jobs/{job_id}").json())["state"] not in ("done", "failed"):
            time.sleep(POLL_S)
        cold = time.perf_counter() - start
        if job["state"] != "done":
            raise SystemExit(f"job failed: {job['error']}")
        start = time.perf_counter()
        repeat = server.http.post("/profile", json=body).json()["jobs"][0]
        server.http.get(f"/jobs/{repeat['id']}").raise_for_status()
        cached = time.perf_counter() - start
        assert repeat["cached"], repeat
        return cold, cached, _phases(job)
    finally:
        server.stop()


def _phases(job: dict) -> dict:
    from datetime import datetime

    created, started, finished = (
        datetime.fromisoformat(job[k]) for k in ("created_at", "started_at", "finished_at")
    )
    return {
        "queue_wait": (started - created).total_seconds(),
        "export_and_measure": (finished - started).total_seconds(),
        "measure_wall": job["result"]["host_load"]["wall_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobileone_s0")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--iters", type=int, default=200, help="measured iterations per run")
    parser.add_argument("--quick", action="store_true", help="one repeat, 50 iterations")
    parser.add_argument("--direct-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats, iters = (1, 50) if args.quick else (args.repeats, args.iters)
    measure = settings_for(iters)
    if args.direct_child:
        import json

        import torch  # like the server: torch and the zoo loaded before the clock starts

        torch.set_num_threads(1)
        from exporters.spec import parse_spec
        from exporters.zoo.registry import resolve

        resolve(parse_spec(args.model))
        export_s, measure_s = direct_child(args.model, measure, args.direct_child)
        print(json.dumps({"export": export_s, "measure": measure_s}))
        return
    svc, dir_export, dir_measure, cached = [], [], [], []
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            cold, hit, phases = through_service(args.model, measure, Path(a))
            e, m = direct(args.model, measure, Path(b))
        svc.append(cold), cached.append(hit), dir_export.append(e), dir_measure.append(m)
        print(
            f"run {i + 1}: service cold {cold:.2f} s (queue wait {phases['queue_wait']:.2f}, "
            f"export+measure {phases['export_and_measure']:.2f}, of which measuring "
            f"{phases['measure_wall']:.2f}) | direct {e + m:.2f} s (export {e:.2f} + measure "
            f"{m:.2f}) | cached repeat {hit * 1000:.1f} ms"
        )
    direct_total = [e + m for e, m in zip(dir_export, dir_measure, strict=True)]
    med = statistics.median
    print(
        f"\n{args.model}, ONNX, {iters} measured iterations, 1 thread, {repeats} run(s), medians:"
    )
    print(f"  cold POST /profile -> result : {med(svc):7.2f} s")
    print(
        f"  direct export + measure      : {med(direct_total):7.2f} s "
        f"(export {med(dir_export):.2f} s, measure {med(dir_measure):.2f} s)"
    )
    print(
        f"  service overhead             : {med(svc) - med(direct_total):+7.2f} s "
        f"(ratio {med(svc) / med(direct_total):.2f}x)"
    )
    print(f"  cached repeat POST + GET     : {med(cached) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
