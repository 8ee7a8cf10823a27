"""A runner's posts survive a busy server: a real HTTP server (in a thread) answers 503 twice,
then takes the result; the runner delivers it once, having waited as ``Retry-After`` said. A
result the server refuses is reported at once as the job's failure, with the reason."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import BaseModel

from devices.jobs.http_port import HttpPort, Retry
from devices.jobs.port import JobTask
from exporters.errors import BusyError, RunnerError

TASK = JobTask(job_id="j" * 32, attempt=1, device_class="cpu-x86_64", format="onnx",
               artifact_key="k", settings={})  # fmt: skip


class Measured(BaseModel):
    median_ms: float


class Server(ThreadingHTTPServer):
    """Answers each path from a script of (status, body, headers), the last repeated; records
    every request as (path, body)."""

    def __init__(
        self, script: dict[str, list[tuple[int, dict, dict]]], files: dict[str, bytes] | None = None
    ) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script = script
        self.files = files or {}  # GET path -> bytes, served with their SHA-256 as the API does
        self.seen: list[tuple[str, dict]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.seen.append((self.path, body))
        answers = self.server.script[self.path]
        status, doc, headers = answers.pop(0) if len(answers) > 1 else answers[0]
        payload = json.dumps(doc).encode()
        self.send_response(status)
        for name, value in {**headers, "content-type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        data = self.server.files[self.path]
        self.server.seen.append((self.path, {}))
        self.send_response(200)
        self.send_header("x-artifact-sha256", hashlib.sha256(data).hexdigest())
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


@contextmanager
def serving(script, files: dict[str, bytes] | None = None) -> Iterator[Server]:
    server = Server(script, files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


RESULTS, FAILURES = "/runners/r/results", "/runners/r/failures"
BUSY = (503, {"detail": "busy"}, {"retry-after": "2"})


@pytest.fixture
def port(tmp_path):
    def make(server: Server, waits: list[float]) -> HttpPort:
        port = HttpPort(server.url, cache=tmp_path, retry=Retry(attempts=4), sleep=waits.append)
        port.runner_id = "r"
        return port

    return make


def test_a_result_met_by_503_twice_then_200_is_delivered_once(port):
    with serving({RESULTS: [BUSY, BUSY, (201, {"result_id": 1}, {})]}) as server:
        waits: list[float] = []
        port(server, waits).post_result(TASK, Measured(median_ms=4.2))
        assert [path for path, _ in server.seen] == [RESULTS] * 3
        assert {json.dumps(body) for _, body in server.seen} == {
            json.dumps({"job_id": TASK.job_id, "attempt": 1, "result": {"median_ms": 4.2}})
        }
        assert waits == [2.0, 2.0]  # as Retry-After said, not the backoff's 0.5 and 1


def test_retries_end_within_their_bound(port):
    with serving({RESULTS: [BUSY]}) as server:
        waits: list[float] = []
        with pytest.raises(BusyError):  # the last answer, decoded as the class the server named
            port(server, waits).post_result(TASK, Measured(median_ms=4.2))
        assert len(server.seen) == 4 and len(waits) == 3


def test_an_unreachable_server_is_retried_then_given_up(port, tmp_path):
    with serving({RESULTS: [BUSY]}) as server:
        url = server.url
    waits: list[float] = []
    closed = HttpPort(url, cache=tmp_path, retry=Retry(attempts=3), sleep=waits.append)
    closed.runner_id = "r"
    with pytest.raises(RunnerError, match="gave up after 3 tries"):
        closed.post_result(TASK, Measured(median_ms=4.2))
    assert waits == [0.5, 1.0]


def test_a_refused_result_fails_the_job_at_once_with_the_reason(port):
    refused = (422, {"detail": "p90 below the median", "field": "result.latency_ms"}, {})
    script = {RESULTS: [refused], FAILURES: [(204, {}, {})]}
    with serving(script) as server:
        with pytest.raises(RunnerError, match="refused the result"):
            port(server, []).post_result(TASK, Measured(median_ms=4.2))
        paths = [path for path, _ in server.seen]
        assert paths == [RESULTS, FAILURES]
        error = server.seen[1][1]["error"]
        assert "p90 below the median" in error and "result.latency_ms" in error
