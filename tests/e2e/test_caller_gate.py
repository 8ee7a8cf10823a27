"""Nothing is read before the caller is known, measured on a real server process: a stranger's
large body sent to POST /artifacts (as JSON, the text guard once buffered and parsed it up to the
256 MiB artifact bound; as octet-stream, before the token check) is refused without the server's
memory growing by the body's size."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Self

import httpx
import psutil
import pytest

from tests.e2e.conftest import Server, service_env

TOKEN = "the-api-token-of-this-test-server"
BODY_MIB = 32


def _rss(pid: int) -> int:
    """Resident bytes of the server and its children (API processes, workers)."""
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def _settled(pid: int, timeout: float = 90) -> int:
    """RSS once the server stops growing on its own (it imports and warms up after start)."""
    last, deadline = _rss(pid), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(2)
        now = _rss(pid)
        if abs(now - last) < 2**20:
            return now
        last = now
    return last


class _Peak(threading.Thread):
    """The largest RSS of the server while a request runs (memory freed after the refusal does
    not show in a reading taken after it)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, _rss(self.pid))
            time.sleep(0.05)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.done.set()
        self.join()
        self.peak = max(self.peak, _rss(self.pid))


def _chunks() -> Iterator[bytes]:
    """One JSON array of about ``BODY_MIB`` MiB of empty objects: parsed, it takes ~50x that."""
    yield b"["
    for _ in range(BODY_MIB):
        yield b"{}," * ((1 << 20) // 3)
    yield b"{}]"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("gate")
    env = service_env(directory)
    env["LATBENCH_API_TOKEN"] = TOKEN
    server = Server(env, directory / "server.log")
    yield server
    server.stop()


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream"])
def test_a_strangers_large_body_is_refused_before_it_is_read(server, content_type):
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert server.http.get("/jobs", headers=auth).status_code == 200  # the route is warm
    before = _settled(server.popen.pid)
    with _Peak(server.popen.pid) as peak:
        try:
            response = server.http.post(
                "/artifacts", content=_chunks(), headers={"content-type": content_type}
            )
            status = response.status_code
        except httpx.TransportError:  # refused while still sending: nothing was read
            status = None
    grown = peak.peak - before
    print(f"{content_type}: status {status}, server grew {grown / 2**20:.1f} MiB")
    assert status in {None, 401}, status
    assert grown < 8 * 2**20, f"server grew {grown >> 20} MiB on a refused request"
    assert server.popen.poll() is None, server.tail()
    assert server.http.get("/jobs", headers=auth).status_code == 200
