"""Dispatch overhead of the distributed deployment: RUNNERS `latbench runner` processes against
`latbench serve --dispatcher celery` (Redis broker, PostgreSQL), JOBS jobs of a tiny model.

    .venv/bin/python bench/dispatch.py [--runners 20] [--jobs 1000] [--wave 20] [--time-limit 900]

The model is mobileone_s0 at 32x32 (random weights), exported once; every job asks for its own
seed, so each is a job of its own (a cached export, a real onnxruntime measurement of 5 runs).
After one warm-up job per runner (its first task imports onnxruntime; not counted), jobs go in
waves of WAVE (one per runner), the next wave once the last is finished, so the
figures are dispatch, not queueing behind busy runners. Printed, from the server's timestamps:
submission to claim (HTTP, the export queue, the export step finding the artifact, the device
queue, the runner's claim) and claim to done minus the measurement's own time (artifact fetch,
session load is counted as measurement, result post and the completing transaction); jobs lost
(accepted, never finished) and duplicated (measured twice, or two results). With waves of 20 on a
2-core host each job's latency includes waiting for a core behind the other 19 (a wave's CPU work
is done in turn): the overhead of one job's path alone is what ``--wave 1`` prints, the cost per
job under load is the wall time per job of the whole run. Each runner gets its
own host lock and cache, as runners on separate machines would. Loopback only; every process it
starts is ended before it returns; bounded by --time-limit.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil
from sqlalchemy import create_engine, text

from tests.e2e.conftest import LATBENCH, Proc, Server, service_env
from tests.service.backends import fresh_postgres, redis_namespace

MODEL = {"model": "mobileone_s0", "input": {"height": 32, "width": 32}, "formats": ["onnx"]}
MINIMAL = {
    "threads": 1,
    "min_iters": 5,
    "max_iters": 5,
    "max_seconds": 1.0,
    "warmup_max_iters": 1,
    "warmup_max_seconds": 1.0,
    "input_pool": 1,
}
RUNNER_MB = 250  # resident size of one idle runner (onnxruntime, Celery), measured at start


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} (1/5 min, {os.cpu_count()} cores)"


def runners_that_fit(wanted: int) -> int:
    free_mb = psutil.virtual_memory().available / 2**20
    fit = int(free_mb * 0.5 // RUNNER_MB)  # leave half the free memory to everyone else
    print(f"memory available {free_mb:.0f} MiB: {fit} runners of ~{RUNNER_MB} MiB fit in half")
    return max(1, min(wanted, fit))


def start_runners(server: Server, count: int, env: dict[str, str], work: Path) -> list[Proc]:
    runners = []
    for i in range(count):
        args = [LATBENCH, "runner", "--server", server.url, "--device-class", "cpu-x86_64"]
        args += ["--cache", str(work / f"cache-{i}"), "--lock", str(work / f"lock-{i}")]
        runners.append(Proc(args, env, work / f"runner-{i}.log"))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        online = [d for d in server.http.get("/devices").json()["data"] if d["online"]]
        if len(online) >= count:
            time.sleep(3)  # registration precedes each Celery consumer: let them subscribe
            return runners
        time.sleep(1)
    raise SystemExit(f"only {len(online)} of {count} runners registered in 300 s")


def submit(server: Server, seed: int) -> str:
    body = {"model": MODEL, "settings": {**MINIMAL, "seed": seed}}
    response = server.http.post("/profile", json=body)
    response.raise_for_status()
    return response.json()["jobs"][0]["id"]


def wait_finished(engine, ids: list[str], deadline: float) -> None:
    query = text("SELECT count(*) FROM jobs WHERE id = ANY(:ids) AND state IN ('done','failed')")
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(query, {"ids": ids}).scalar_one() == len(ids):
                return
        time.sleep(0.05)


def own_time_s(measurement: dict) -> float:
    """What the measurement itself took: session load, warm-up and the timed runs."""
    latency = measurement["latency_ms"]
    runs = sum(measurement.get("samples_ms") or []) or latency["median"] * latency.get("n", 1)
    warmup = (measurement.get("warmup_iters") or 0) * latency["median"]
    return ((measurement.get("load_ms") or 0.0) + warmup + runs) / 1000


def describe(name: str, values_ms: list[float]) -> None:
    if not values_ms:
        print(f"{name}: no data")
        return
    ordered = sorted(values_ms)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    print(
        f"{name}: median {statistics.median(ordered):.1f} ms, mean {statistics.fmean(ordered):.1f}"
        f" ms, p90 {p90:.1f} ms, max {ordered[-1]:.1f} ms (n={len(ordered)}; {load()})"
    )


def report(engine, accepted: list[str]) -> None:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT j.id, j.state, j.attempt, j.error, j.created_at, j.measure_started_at, "
                "j.finished_at, r.measurement FROM jobs j LEFT JOIN results r ON r.job_id = j.id "
                "WHERE j.id = ANY(:ids)"
            ),
            {"ids": accepted},
        ).all()
        results_per_job = conn.execute(
            text("SELECT job_id, count(*) FROM results GROUP BY job_id HAVING count(*) > 1")
        ).all()
    states = {}
    for row in rows:
        states[row.state] = states.get(row.state, 0) + 1
    lost = [r.id for r in rows if r.state not in ("done", "failed")]
    remeasured = [r.id for r in rows if r.attempt > 1]
    done = [r for r in rows if r.state == "done" and r.measure_started_at]
    to_claim = [(r.measure_started_at - r.created_at).total_seconds() * 1000 for r in done]
    after = [
        ((r.finished_at - r.measure_started_at).total_seconds() - own_time_s(r.measurement)) * 1000
        for r in done
    ]
    print(f"jobs accepted {len(accepted)}, by state {states}")
    for r in rows:
        if r.state == "failed":
            print(f"  failed {r.id}: {r.error}")
            break
    describe("submission -> claim", to_claim)
    describe("claim -> done, less the measurement's own time", after)
    overhead = [a + b for a, b in zip(to_claim, after, strict=True)]
    describe("dispatch overhead per job (sum)", overhead)
    print(f"jobs lost: {len(lost)}; jobs duplicated: {len(remeasured) + len(results_per_job)} "
          f"({len(remeasured)} measured more than once, {len(results_per_job)} with 2+ results)")  # fmt: skip
    print("target: <= 50 ms per job, 0 lost, 0 duplicated")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runners", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--wave", type=int, default=0, help="jobs per wave (default: runners)")
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds, all included")
    args = parser.parse_args()
    started = time.monotonic()
    print(f"dispatch bench: {args.runners} runners wanted, {args.jobs} jobs; {load()}")
    count = runners_that_fit(args.runners)
    wave = args.wave or count
    with (
        tempfile.TemporaryDirectory(prefix="latbench-dispatch-") as tmp,
        fresh_postgres() as db_url,
        redis_namespace() as (redis_url, namespace),
    ):
        work = Path(tmp)
        env = service_env(work)
        env.update(
            LATBENCH_DATABASE_URL=db_url,
            LATBENCH_BROKER_URL=redis_url,
            LATBENCH_QUEUE_NAMESPACE=namespace,
            LATBENCH_HEARTBEAT_INTERVAL_S="2",
            LATBENCH_HEARTBEAT_TIMEOUT_S="60",
            LATBENCH_MAX_QUEUED_PER_USER=str(args.jobs + 10),
        )
        server = Server(env, work / "server.log", "--dispatcher", "celery")
        runners: list[Proc] = []
        engine = create_engine(db_url)
        accepted: list[str] = []
        try:
            runners = start_runners(server, count, env, work)
            print(f"{count} runners online after {time.monotonic() - started:.0f} s; {load()}")
            deadline = started + args.time_limit
            first = submit(server, seed=10**6)  # the one export; not counted
            wait_finished(engine, [first], deadline)
            # One job per runner, not counted: each imports onnxruntime on its first task.
            warm = [submit(server, seed=10**6 + 1 + i) for i in range(count)]
            wait_finished(engine, warm, deadline)
            waves_started = time.monotonic()
            with ThreadPoolExecutor(wave) as pool:
                seed = 0
                while seed < args.jobs and time.monotonic() < deadline:
                    seeds = range(seed, min(seed + wave, args.jobs))
                    ids = list(pool.map(lambda s: submit(server, s), seeds))
                    accepted += ids
                    wait_finished(engine, ids, deadline)
                    seed += len(ids)
            grace = time.monotonic() + 30  # let stragglers finish before counting them lost
            wait_finished(engine, accepted, min(grace, deadline + 30))
            if accepted:
                wall = time.monotonic() - waves_started
                print(f"{len(accepted)} jobs in {wall:.1f} s: {1000 * wall / len(accepted):.1f} ms"
                      f" of wall time per job with {count} runners; {load()}")  # fmt: skip
            if seed < args.jobs:
                print(f"time limit: {seed} of {args.jobs} jobs submitted")
            report(engine, accepted)
        finally:
            engine.dispose()
            for runner in runners:
                runner.kill(signal.SIGTERM, timeout=15)
            server.stop()
    print(f"total {time.monotonic() - started:.0f} s; {load()}")


if __name__ == "__main__":
    main()
