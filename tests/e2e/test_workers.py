"""`latbench serve` with two API processes (LATBENCH_WORKERS=2), as real processes: a job
submitted through the replica is measured by the first process's embedded runner (the replica
has no dispatcher of its own, only the relay), and the replica ends with the first process,
whether that is stopped (SIGTERM to it alone) or killed."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time

import psutil
import pytest

from tests.e2e.conftest import FAST, Server

pytestmark = pytest.mark.slow


def replicas_of(server: Server, timeout: float = 120) -> list[psutil.Process]:
    """The replica processes, once each listens on the server's port."""
    first = psutil.Process(server.popen.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spawned = [p for p in first.children() if "multiprocessing.spawn" in " ".join(p.cmdline())]
        listening = [
            p
            for p in spawned
            if any(
                c.status == "LISTEN" and c.laddr.port == server.port for c in p.net_connections()
            )
        ]
        if listening:
            return listening
        time.sleep(0.2)
    raise AssertionError(f"no replica listens on {server.port}:\n{server.tail()}")


def connection_to(server: Server, process: psutil.Process) -> http.client.HTTPConnection:
    """A keep-alive connection that ``process`` accepted (the kernel spreads new connections
    over the processes' sockets: open them until one lands there)."""
    for _ in range(200):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b'{"status":"ok"}'
        ours = conn.sock.getsockname()[1]
        if any(c.raddr and c.raddr.port == ours for c in process.net_connections()):
            return conn
        conn.close()
    raise AssertionError("no connection landed on the replica in 200 tries")


def post(conn: http.client.HTTPConnection, path: str, body: dict) -> tuple[int, dict]:
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def gone(process: psutil.Process, timeout: float) -> bool:
    try:
        process.wait(timeout)
    except psutil.TimeoutExpired:
        return False
    return True


@pytest.fixture
def server(base_env, tmp_path):
    served = Server(base_env | {"LATBENCH_WORKERS": "2"}, tmp_path / "server.log")
    yield served
    served.kill(signal.SIGKILL)


def end_first_process(server: Server, sig: int) -> None:
    """Signal the first process only, not its process group, and wait for it to end."""
    os.kill(server.popen.pid, sig)
    server.popen.wait(timeout=60)


def test_a_job_submitted_to_a_replica_is_measured_and_sigterm_ends_every_process(server):
    (replica,) = replicas_of(server)
    conn = connection_to(server, replica)
    status, accepted = post(conn, "/profile", {"model": "mobileone_s0", "settings": FAST})
    assert status == 202, accepted
    job = server.wait_job(accepted["jobs"][0]["id"])
    assert job["state"] == "done", job["error"]
    assert job["result"]["latency_ms"]["median"] > 0
    conn.close()  # idle past uvicorn's keep-alive while the job ran
    # the same request through the replica again: answered from the cache, no new job
    conn = connection_to(server, replica)
    status, again = post(conn, "/profile", {"model": "mobileone_s0", "settings": FAST})
    assert (status, again["jobs"][0]["id"], again["jobs"][0]["cached"]) == (202, job["id"], True)
    conn.close()
    end_first_process(server, signal.SIGTERM)
    assert gone(replica, timeout=30), "the replica outlived a stopped server"


def test_a_replica_ends_when_the_first_process_is_killed(server):
    (replica,) = replicas_of(server)
    end_first_process(server, signal.SIGKILL)
    assert gone(replica, timeout=30), "the replica outlived a killed server"


def test_a_replica_that_dies_is_replaced(server):
    (replica,) = replicas_of(server)
    replica.kill()  # as the OOM killer would
    assert gone(replica, timeout=30)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        (again,) = replicas_of(server)
        if again.pid != replica.pid:
            break
        time.sleep(0.5)
    assert again.pid != replica.pid, server.tail()
    assert server.http.get("/healthz").status_code == 200
    end_first_process(server, signal.SIGTERM)
    assert gone(again, timeout=30), "the new replica outlived a stopped server"
