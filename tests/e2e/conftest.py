"""Real processes for end-to-end tests: `latbench serve` and `latbench runner` as subprocesses
(own process groups, so a test can SIGKILL one as a crash would), driven over HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

LATBENCH = str(Path(sys.executable).with_name("latbench"))
# A short but real measurement: one thread, about a second of sampling.
FAST = {"threads": 1, "max_seconds": 1.0, "warmup_max_seconds": 0.5, "min_iters": 10}
# A short A/B comparison: four session pairs of five ABBA blocks.
FAST_AB = {"threads": 1, "warmup_max_seconds": 0.5, "ab_reloads": 4, "ab_blocks": 5}
# One model at two input sizes: the candidate computes four times the pixels.
SMALL = {"model": "mobileone_s0", "input": {"height": 64, "width": 64}}
LARGE = {"model": "mobileone_s0", "input": {"height": 128, "width": 128}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 (the process's output for its lifetime; closed by kill)
        self.popen = subprocess.Popen(
            args, env=env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._out.close()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Server(Proc):
    def __init__(
        self, env: dict[str, str], log: Path, *options: str, latbench: str = LATBENCH
    ) -> None:
        """``latbench serve`` of ``latbench`` (default: this environment's command)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([latbench, "serve", "--port", str(self.port), *options], env, log)
        self.http = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.tail()}")
            try:
                if self.http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not healthy in 120 s:\n{self.tail()}")

    def wait_job(self, job_id: str, states=("done", "failed"), timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        job = {"state": "unknown"}
        while time.monotonic() < deadline:
            answer = self.http.get(f"/jobs/{job_id}")
            if answer.status_code != 503:  # 503: a pooled connection the database dropped
                job = answer.json()  # failed its first use; the next request gets a fresh one
                if job["state"] in states:
                    return job
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.http.close()
        self.kill(sig)


@contextmanager
def celery_server(env: dict[str, str], log: Path) -> Iterator[tuple[Server, str]]:
    """`latbench serve --dispatcher celery` on a fresh PostgreSQL database and a Redis queue
    namespace of its own (``env`` is updated to match, for runners); with the database URL."""
    from tests.service.backends import fresh_postgres, redis_namespace

    with fresh_postgres() as db_url, redis_namespace() as (redis_url, namespace):
        env.update(
            LATBENCH_DATABASE_URL=db_url,
            LATBENCH_BROKER_URL=redis_url,
            LATBENCH_QUEUE_NAMESPACE=namespace,
        )
        server = Server(env, log, "--dispatcher", "celery")
        try:
            yield server, db_url
        finally:
            server.stop()


def copy_checkout(repo: Path, dest: Path) -> None:
    """Copy the files git lists in REPO (tracked, and untracked but not ignored) to DEST: what a
    clone of this working tree holds, without build outputs, caches or a virtual environment."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in listed:
        if (repo / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, dest / name)


def service_env(directory: Path) -> dict[str, str]:
    """This environment without LATBENCH_* settings, plus a data dir and quick liveness checks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATBENCH_")}
    env.update(
        {
            "LATBENCH_DATA_DIR": str(directory / "data"),
            "LATBENCH_HOST_LOCK": str(directory / "host.lock"),
            "LATBENCH_HEARTBEAT_INTERVAL_S": "0.5",
            "LATBENCH_HEARTBEAT_TIMEOUT_S": "3",
            "LATBENCH_REAPER_INTERVAL_S": "0.5",
            "LATBENCH_WORKERS": "1",  # one API process; test_workers.py runs more
            "OMP_NUM_THREADS": "1",
        }
    )
    return env


@pytest.fixture
def base_env(tmp_path) -> dict[str, str]:
    return service_env(tmp_path)
