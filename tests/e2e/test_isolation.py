"""Untrusted work bounded, with real processes: on `latbench serve` (embedded runner) and on a
remote `latbench runner` (Celery + Redis + PostgreSQL), an uploaded artifact whose run never ends,
one that declares an input over the work budget, one that exhausts memory while it runs, and (on
the embedded runner) an export whose child crashes are each refused with a 4xx or fail their job
with the reason within the job timeout; the host lock is free afterwards and a plain profile
submitted afterwards is done."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.e2e import untrusted
from tests.e2e.conftest import FAST, LATBENCH, Server, celery_server, service_env
from tests.e2e.test_distributed import start_runner
from tests.service.doubles import OCTET

pytestmark = pytest.mark.slow

JOB_TIMEOUT_S = 45  # short for the endless upload, long enough for a measurement on a busy host
PLAIN = {"model": "mobileone_s0", "input": {"height": 32, "width": 32}}
LIMITS = {
    "LATBENCH_JOB_TIMEOUT_S": str(JOB_TIMEOUT_S),
    "LATBENCH_MEASURE_MEMORY_MB": "1536",
    "LATBENCH_MAX_ACTIVATION_BYTES": str(512 * 2**20),
    "LATBENCH_MAX_ATTEMPTS": "1",
}


def exported_beforehand(env: dict[str, str], directory: Path) -> None:
    """PLAIN's artifact in the data dir, so the plain profile needs no export under the short
    job timeout (``latbench export`` has none)."""
    spec = directory / "plain.json"
    spec.write_text(json.dumps(PLAIN))
    done = subprocess.run(
        [LATBENCH, "export", str(spec), "--format", "onnx"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr


def upload(server: Server, path: Path):
    return server.http.post(
        "/artifacts",
        params={"name": path.stem},
        content=path.read_bytes(),
        headers=OCTET,
        timeout=300,
    )


def measure_upload(server: Server, path: Path) -> dict:
    """The job of profiling the uploaded ``path``, once it ended (bounded by the job timeout
    and the time a busy host takes to notice)."""
    uploaded = upload(server, path)
    assert uploaded.status_code == 201, uploaded.text
    accepted = server.http.post(
        "/profile", json={"artifact": uploaded.json()["id"], "settings": FAST}
    )
    assert accepted.status_code == 202, accepted.text
    return server.wait_job(accepted.json()["jobs"][0]["id"], timeout=JOB_TIMEOUT_S + 120)


def assert_recovered(server: Server, lock: Path) -> None:
    """The host lock is free and a plain profile submitted now is done."""
    deadline = time.monotonic() + 30
    while not untrusted.lock_is_free(lock):
        assert time.monotonic() < deadline, "the host lock is still held"
        time.sleep(0.2)
    accepted = server.http.post("/profile", json={"model": PLAIN, "formats": ["onnx"],
                                                   "settings": {**FAST, "seed": time.time_ns() % 1000}})  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    job = server.wait_job(accepted.json()["jobs"][0]["id"], timeout=240)
    assert job["state"] == "done", job["error"]


def check_uploads(server: Server, lock: Path, directory: Path) -> None:
    """The three uploads against ``server``: refused, or failed with the reason; then recovered."""
    refused = upload(server, untrusted.huge_input(directory / "huge.onnx"))
    assert refused.status_code == 422, refused.text
    assert "max_activation_bytes" in refused.json()["detail"]

    started = time.monotonic()
    job = measure_upload(server, untrusted.endless(directory / "endless.onnx"))
    assert job["state"] == "failed"
    assert "timed out" in job["error"] or "ran past" in job["error"], job["error"]
    assert time.monotonic() - started < JOB_TIMEOUT_S + 120
    assert_recovered(server, lock)

    job = measure_upload(server, untrusted.hungry(directory / "hungry.onnx"))
    assert job["state"] == "failed"
    assert "memory" in job["error"] or "alloc" in job["error"], job["error"]
    assert_recovered(server, lock)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    directory = tmp_path_factory.mktemp("isolation")
    env = service_env(directory) | LIMITS
    exported_beforehand(env, directory)
    server = Server(env, directory / "server.log")
    yield server, Path(env["LATBENCH_HOST_LOCK"]), directory
    server.stop()


def test_embedded_runner_survives_untrusted_uploads(embedded):
    server, lock, directory = embedded
    check_uploads(server, lock, directory)


def export_children(server: Server) -> list[psutil.Process]:
    """The export's worker processes: children of a fork server under `latbench serve`."""
    found = []
    for process in psutil.Process(server.popen.pid).children(recursive=True):
        try:
            parent = process.parent()
            if parent is not None and "forkserver" in " ".join(parent.cmdline()):
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


def test_an_export_whose_child_crashes_fails_its_job_and_the_next_runs(embedded):
    server, lock, _ = embedded
    spec = {"model": "mobileone_s0", "input": {"height": 48, "width": 48}}  # not exported yet
    accepted = server.http.post(
        "/profile", json={"model": spec, "formats": ["onnx"], "settings": FAST}
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["jobs"][0]["id"]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not (children := export_children(server)):
        assert time.monotonic() < deadline, f"no export child appeared:\n{server.tail()}"
        time.sleep(0.2)
    for child in children:
        child.send_signal(signal.SIGKILL)  # as a segfault or the OOM killer would
    job = server.wait_job(job_id, timeout=JOB_TIMEOUT_S + 60)
    assert job["state"] == "failed"
    assert "died" in job["error"] or "timed out" in job["error"], job["error"]
    assert_recovered(server, lock)


@pytest.mark.redis
@pytest.mark.postgres
def test_remote_runner_survives_untrusted_uploads(tmp_path):
    env = service_env(tmp_path) | LIMITS
    exported_beforehand(env, tmp_path)
    with celery_server(env, tmp_path / "server.log") as (server, _):
        runner, _ = start_runner(server, env, tmp_path / "runner.log")
        try:
            check_uploads(server, Path(env["LATBENCH_HOST_LOCK"]), tmp_path)
        finally:
            runner.kill()
