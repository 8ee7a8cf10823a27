"""Instructions per request of the API's reads, counted by valgrind's callgrind: a figure the
shared host cannot move, for telling whether a change made a read cheaper or dearer.

    python bench/request_cost.py [--requests 100] [--against PATH] [--quick]

On this 2-core VM req/s and CPU time per request move by up to 1.8x from one run to the next
(``bench/load.py`` prints both with the host load); a 3% change in what a read costs cannot be
seen there. Instructions can: the same code, data and inputs give the same count to ~0.5%,
whatever else the host runs.

What it does: seeds a data dir through a real ``latbench serve`` (one real profile of
mobileone_s0 storing exactly 50 samples), then runs the ASGI app in a process under callgrind
with counting off until the measured loop: the app's lifespan runs (with an inert dispatcher:
no job work), each read is called ``--requests`` times straight into the app after a warm-up
(no socket, no uvicorn: their part is the same for every version of this code), and the count
is taken per read. ``--against PATH`` does the same for another checkout of latbench (e.g. a
``git worktree`` of an earlier commit), seeded by its own harness, and prints the ratio.
Needs valgrind (Debian's ``valgrind``); without it the script says so and measures nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READS = {
    "GET /healthz": "/healthz",
    "GET /results": "/results?model=mobileone_s0",
    "GET /jobs/{id}": "/jobs/{job_id}",
    "GET /devices": "/devices",
}
WARMUP = 20
# A read's cost grows with the samples its result stores: the seed stores the same count on
# every side (a time-bound measurement would store as many as the host's speed allowed).
SEED_SETTINGS = {
    "threads": 1,
    "min_iters": 50,
    "max_iters": 50,
    "max_seconds": 120,
    "warmup_max_iters": 10,
}


def seed_child(out: Path) -> None:
    """In a process started in the checkout measured: its own harness seeds."""
    sys.path[:0] = [str(Path.cwd()), str(Path.cwd() / "bench")]
    from load import MODEL, Server, service_env  # that checkout's bench/load.py

    server = Server(service_env(out), out / "server.log")
    try:
        job = server.http.post(
            "/profile", json={"model": MODEL, "formats": ["onnx"], "settings": SEED_SETTINGS}
        )
        job_id = job.json()["jobs"][0]["id"]
        if (state := server.wait_job(job_id, timeout=600)["state"]) != "done":
            raise SystemExit(f"the seed job ended {state}")
    finally:
        server.stop()
    (out / "seed.json").write_text(json.dumps({"job_id": job_id}))


def count_child(data: Path, requests: int) -> None:
    """Under callgrind, in the checkout measured: its app's reads counted."""
    sys.path.insert(0, str(Path.cwd()))
    from tests.e2e.conftest import service_env
    from tests.service.doubles import RecordingDispatcher

    os.environ.update(service_env(data))
    from service.app import create_app
    from service.settings import get_settings

    # the schema is current; round 2's create_app said so with replica=True (no migrate flag)
    current = "migrate" in create_app.__code__.co_varnames
    options = {"migrate": False} if current else {"replica": True}
    app = create_app(get_settings(), RecordingDispatcher.this_host(), **options)
    job_id = json.loads((data / "seed.json").read_text())["job_id"]

    async def call(target: str) -> int:
        path, _, query = target.partition("?")
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1:8000")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        await app(scope, receive, send)
        return sent[0]["status"]

    def callgrind(*args: str) -> None:
        subprocess.run(
            ["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True
        )

    async def main() -> None:
        async with app.router.lifespan_context(app):
            directory = getattr(app.state, "directory", None)
            if directory is not None:  # laptop mode's recheck of the users table: once a second,
                directory.recheck_s = float("inf")  # i.e. every few requests under valgrind
            for name, target in READS.items():
                target = target.format(job_id=job_id)
                for _ in range(WARMUP):
                    status = await call(target)
                    if status != 200:
                        raise SystemExit(f"{name}: {status}")
                callgrind("--zero")
                callgrind("--instr=on")
                for _ in range(requests):
                    await call(target)
                callgrind("--instr=off")
                callgrind(f"--dump={name}")

    asyncio.run(main())


def run_side(root: Path, work: Path, requests: int) -> dict[str, float]:
    """Seed, then count, for the checkout at ``root``: instructions per request by read."""
    env = os.environ | {"PYTHONPATH": f"{root}{os.pathsep}{root / 'bench'}"}
    env = {k: v for k, v in env.items() if not k.startswith("LATBENCH_")}
    data = work / "data"
    data.mkdir(parents=True)
    me = str(Path(__file__).resolve())
    subprocess.run([sys.executable, me, "--seed-child", str(data)], env=env, check=True, cwd=root)
    out = work / "callgrind"
    out.mkdir()
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}/cg.%p",
            sys.executable,
            me,
            "--count-child",
            str(data),
            "--requests",
            str(requests),
        ],
        env=env,
        check=True,
        cwd=root,
        capture_output=True,
    )
    counts: dict[str, float] = {}
    for dump in out.glob("cg.*.*"):
        text = dump.read_text()
        name = text.split("desc: Trigger: dump ", 1)[1].split("\n", 1)[0]
        total = int(text.split("\ntotals: ", 1)[1].split("\n", 1)[0])
        counts[name] = total / requests
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="counted per read")
    parser.add_argument("--against", type=Path, help="another checkout of latbench to compare")
    parser.add_argument("--quick", action="store_true", help="20 requests per read (make bench)")
    parser.add_argument("--seed-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_child:
        seed_child(args.seed_child)
    elif args.count_child:
        count_child(args.count_child, args.requests)
    elif not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("valgrind is not installed (Debian: apt-get install valgrind): nothing measured")
    else:
        compare(args)


def compare(args: argparse.Namespace) -> None:
    requests = 20 if args.quick else args.requests
    sides = {"this checkout": ROOT}
    if args.against:
        sides[f"{args.against}"] = args.against.resolve()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor() as pool:
        # counts do not depend on what else runs: the sides run at once
        futures = {
            name: pool.submit(run_side, root, Path(tmp) / str(i), requests)
            for i, (name, root) in enumerate(sides.items())
        }
        counts = {name: future.result() for name, future in futures.items()}
    names = list(counts)
    print(f"instructions per request (callgrind, {requests} requests per read, in the app)")
    head = "  ".join(f"{n[-28:]:>28}" for n in names)
    print(f"  {'read':<16} {head}" + ("       ratio" if len(names) == 2 else ""))
    for read in READS:
        row = "  ".join(f"{counts[n].get(read, float('nan')) / 1e6:26.3f} M" for n in names)
        ratio = ""
        if len(names) == 2:
            ratio = f"  {counts[names[0]][read] / counts[names[1]][read]:10.3f}"
        print(f"  {read:<16} {row}{ratio}")


if __name__ == "__main__":
    main()
