"""Request rate and latency of the service under concurrent clients, on loopback only.

    python bench/load.py [--db sqlite|postgres|both] [--seconds 3] [--clients 1,8,32,128]
                         [--workers 0,1]

Starts ``latbench serve`` (embedded default: local CPU runner; SQLite, or a throw-away PostgreSQL
database), profiles one small model for real (random weights) so that /results, /jobs/{id} and a
cached POST /profile have something to answer, with each ``--workers`` count of API processes
(0: the default, one per physical core), then drives each endpoint with N keep-alive clients
for a bounded time (and at most --max-requests requests) and prints req/s, p50, p99, timeouts and
non-2xx answers, and the server's CPU time per request (which, unlike req/s, does not depend on
what else a shared host runs). Afterwards one plain GET /healthz must answer normally.

The clients are a minimal asyncio HTTP/1.1 loop in this process (no third-party load tool): on a
2-core host the clients share the cores with the server; the clients' own CPU time per request
is printed beside the server's (all its API processes), and host load beside every figure. Targets (issue 11): reads at 32 clients >= 1000 req/s with p99 <= 50 ms, no timeout, no 5xx.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import FAST, Server, service_env  # the e2e process harness

MODEL = "mobileone_s0"
TIMEOUT_S = 10.0


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    timeouts: int = 0
    errors: int = 0


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bool]:
    """One request on a keep-alive connection: (status, connection still usable)."""
    writer.write(raw)
    await writer.drain()
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length, close = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "connection" and value.strip().lower() == "close":
            close = True
    await reader.readexactly(length)
    return status, not close


def encode(method: str, path: str, body: dict | None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(payload)}\r\n"
    if body is not None:
        head += "Content-Type: application/json\r\n"
    return head.encode() + b"\r\n" + payload


async def _client(port: int, raw: bytes, deadline: float, budget: list[int], tally: Tally) -> None:
    conn = None
    while time.monotonic() < deadline and budget[0] > 0:
        budget[0] -= 1
        if conn is None:
            conn = await asyncio.open_connection("127.0.0.1", port)
        start = time.perf_counter()
        try:
            status, alive = await asyncio.wait_for(_request(*conn, raw), TIMEOUT_S)
        except TimeoutError:
            tally.timeouts += 1
            alive = False
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            tally.errors += 1
            alive = False
        else:
            tally.latencies.append(time.perf_counter() - start)
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
        if not alive:
            conn[1].close()
            conn = None
    if conn is not None:
        conn[1].close()


async def drive(port: int, raw: bytes, clients: int, seconds: float, max_requests: int) -> Tally:
    tally, budget = Tally(), [max_requests]
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(_client(port, raw, deadline, budget, tally) for _ in range(clients)),
    )
    return tally


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} on {os.cpu_count()} cores"


def report(
    name: str, clients: int, tally: Tally, elapsed: float, cpu_s: float, client_cpu_s: float
) -> dict:
    lat = sorted(tally.latencies)
    p50 = statistics.median(lat) * 1000 if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000 if lat else float("nan")
    rate = len(lat) / elapsed
    bad = {s: n for s, n in tally.statuses.items() if s >= 300}
    cpu_ms = 1000 * cpu_s / max(len(lat), 1)
    client_ms = 1000 * client_cpu_s / max(len(lat), 1)
    print(
        f"  {name:<16} c={clients:<4} {rate:8.0f} req/s  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  "
        f"server CPU {cpu_ms:5.2f} ms/req  client CPU {client_ms:5.2f} ms/req  timeouts {tally.timeouts}  errors {tally.errors}  "
        f"non-2xx {bad or 0}  [{load_text()}]",
        flush=True,
    )
    return {"rate": rate, "p99": p99, "bad": bool(bad) or tally.timeouts or tally.errors}


def server_cpu_s(server: Server) -> float:
    """CPU seconds the server's API processes (those listening on its port; not the supervisor
    or the worker process) have used: their cost per request does not depend on what else the
    host runs, unlike req/s on a shared host."""
    apis = [
        p
        for p in psutil.Process(server.popen.pid).children()
        if any(c.status == "LISTEN" and c.laddr.port == server.port for c in p.net_connections())
    ]
    return sum(sum(p.cpu_times()[:2]) for p in apis)


def all_cpu_s(server: Server) -> float:
    """CPU seconds of every process of the server (the API processes' fork servers starting
    included), for telling when it has settled."""
    total = 0.0
    for process in psutil.Process(server.popen.pid).children(recursive=True):
        try:
            total += sum(process.cpu_times()[:2])
        except psutil.NoSuchProcess:  # a child that ended meanwhile (a check's worker)
            continue
    return total


@contextmanager
def postgres_url():
    from tests.service.backends import fresh_postgres

    with fresh_postgres() as url:
        yield url


def quiesce(server: Server, limit_s: float = 60.0) -> None:
    """Wait until the server is idle: each API process settles after starting (imports, fitted
    predictors, its checkers' fork server), which would otherwise be counted in the first case's
    figures."""
    deadline = time.monotonic() + limit_s
    before = all_cpu_s(server)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = all_cpu_s(server)
        if now - before < 0.05:
            return
        before = now


def seed(server: Server) -> tuple[str, dict]:
    """One real, small profile (export + measurement); its job id and the request to repeat."""
    request = {"model": MODEL, "formats": ["onnx"], "settings": FAST}
    job = server.http.post("/profile", json=request).json()["jobs"][0]
    done = server.wait_job(job["id"], timeout=600)
    if done["state"] != "done":
        raise SystemExit(f"seed job failed: {done['error']}")
    return job["id"], request


def run(db: str, workers: int, args: argparse.Namespace) -> bool:
    print(f"== {db}, LATBENCH_WORKERS={workers} ({load_text()})", flush=True)
    ok = True
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        env = service_env(Path(tmp)) | {"LATBENCH_WORKERS": str(workers)}
        if db == "postgres":
            env["LATBENCH_DATABASE_URL"] = stack.enter_context(postgres_url())
        server = Server(env, Path(tmp) / "server.log")
        stack.callback(server.stop)
        job_id, request = seed(server)
        quiesce(server)
        cases = {
            "GET /healthz": encode("GET", "/healthz", None),
            "GET /results": encode("GET", f"/results?model={MODEL}", None),
            "GET /jobs/{id}": encode("GET", f"/jobs/{job_id}", None),
            "GET /devices": encode("GET", "/devices", None),
            "POST /profile": encode("POST", "/profile", request),
        }
        for name, raw in cases.items():
            for clients in args.clients:
                start, cpu, own = time.monotonic(), server_cpu_s(server), time.process_time()
                tally = asyncio.run(
                    drive(server.port, raw, clients, args.seconds, args.max_requests)
                )
                figures = report(
                    name,
                    clients,
                    tally,
                    time.monotonic() - start,
                    server_cpu_s(server) - cpu,
                    time.process_time() - own,
                )
                ok = ok and not figures["bad"]
        start = time.perf_counter()
        after = server.http.get("/healthz", timeout=5)
        print(
            f"  after the run: GET /healthz {after.status_code} in "
            f"{(time.perf_counter() - start) * 1000:.1f} ms",
            flush=True,
        )
        ok = ok and after.status_code == 200
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=3.0, help="per endpoint and client count")
    parser.add_argument("--max-requests", type=int, default=20000, help="per endpoint and count")
    parser.add_argument("--clients", default="1,8,32,128")
    parser.add_argument("--workers", default="0", help="API processes; 0: one per physical core")
    parser.add_argument("--quick", action="store_true", help="1 s per case (make bench)")
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    if args.quick:
        args.seconds = 1.0
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    workers = [int(w) for w in args.workers.split(",")]
    results = [run(db, count, args) for db in dbs for count in workers]
    print("no timeout, no 5xx, healthy after:", all(results))


if __name__ == "__main__":
    main()
