"""The processes of `latbench serve` (LATBENCH_WORKERS=2), as real processes: two API processes
on the port and one worker process under a supervisor. A job submitted through an API process is
measured by the worker (no API process runs job work); a part that dies is started again; SIGTERM
to the supervisor ends every part, and so does SIGKILL. The parts also run apart
(`latbench serve --no-worker` + `latbench worker`), and settings given in the environment are not
overwritten by option defaults."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from tests.e2e.conftest import FAST, LATBENCH, Proc, Server

pytestmark = pytest.mark.slow


def parts_of(server: Server, timeout: float = 120) -> tuple[list[psutil.Process], psutil.Process]:
    """The API processes (once both listen on the server's port) and the worker process."""
    supervisor = psutil.Process(server.popen.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spawned = [
            p for p in supervisor.children() if "multiprocessing.spawn" in " ".join(p.cmdline())
        ]
        listens = {
            p.pid: any(
                c.status == "LISTEN" and c.laddr.port == server.port for c in p.net_connections()
            )
            for p in spawned
        }
        apis = [p for p in spawned if listens[p.pid]]
        others = [p for p in spawned if not listens[p.pid]]
        if len(apis) == 2 and len(others) == 1:
            return apis, others[0]
        time.sleep(0.3)
    raise AssertionError(
        f"no 2 API processes and 1 worker under {server.popen.pid}:\n{server.tail()}"
    )


def gone(process: psutil.Process, timeout: float) -> bool:
    try:
        process.wait(timeout)
    except psutil.TimeoutExpired:
        return False
    return True


def replaced(server: Server, ended: psutil.Process, timeout: float = 120) -> None:
    """Another process in place of ``ended`` (the supervisor starts one after a delay)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        apis, worker = parts_of(server)
        if ended.pid not in {p.pid for p in [*apis, worker]}:
            return
        time.sleep(0.5)
    raise AssertionError(f"{ended.pid} was not replaced:\n{server.tail()}")


@pytest.fixture
def server(base_env, tmp_path):
    served = Server(base_env | {"LATBENCH_WORKERS": "2"}, tmp_path / "server.log")
    yield served
    served.kill(signal.SIGKILL)


def end_supervisor(server: Server, sig: int) -> None:
    """Signal the supervisor only, not its process group, and wait for it to end."""
    os.kill(server.popen.pid, sig)
    server.popen.wait(timeout=60)


def profile(server: Server, **settings) -> dict:
    body = {"model": {"model": "mobileone_s0", "input": {"height": 32, "width": 32}},
            "formats": ["onnx"], "settings": {**FAST, **settings}}  # fmt: skip
    accepted = server.http.post("/profile", json=body)
    assert accepted.status_code == 202, accepted.text
    return server.wait_job(accepted.json()["jobs"][0]["id"])


def test_the_worker_measures_a_dead_part_is_replaced_and_sigterm_ends_every_part(server):
    apis, worker = parts_of(server)
    job = profile(server)
    assert job["state"] == "done", job["error"]
    assert job["result"]["latency_ms"]["median"] > 0
    for api in apis:  # no job work in an API process: no measuring or export child of its own
        names = [" ".join(c.cmdline()) for c in api.children(recursive=True)]
        assert not any("devices.jobs.bounded" in n for n in names), names

    worker.kill()  # as the OOM killer would
    assert gone(worker, timeout=30)
    replaced(server, worker)
    apis[0].kill()
    assert gone(apis[0], timeout=30)
    replaced(server, apis[0])
    again = profile(server, seed=7)  # the new worker takes a job submitted after the restarts
    assert again["state"] == "done", again["error"]

    parts = [*parts_of(server)[0], parts_of(server)[1]]
    end_supervisor(server, signal.SIGTERM)
    assert server.popen.returncode == 0, server.tail()
    for part in parts:
        assert gone(part, timeout=30), f"{part.pid} outlived a stopped server"


def test_every_part_ends_when_the_supervisor_is_killed(server):
    apis, worker = parts_of(server)
    end_supervisor(server, signal.SIGKILL)
    for part in [*apis, worker]:
        assert gone(part, timeout=30), f"{part.pid} outlived a killed server"


def test_the_api_and_the_worker_run_apart(base_env, tmp_path):
    """`latbench serve --no-worker` queues; `latbench worker`, started later, measures."""
    api = Server(base_env, tmp_path / "api.log", "--no-worker")
    worker = None
    try:
        small = {"model": "mobileone_s0", "input": {"height": 32, "width": 32}}
        accepted = api.http.post("/profile", json={"model": small, "settings": FAST})
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["jobs"][0]["id"]
        time.sleep(2)  # nothing takes the job without a worker (a bound, not a wait for a state)
        assert api.http.get(f"/jobs/{job_id}").json()["state"] == "queued"
        worker = Proc([LATBENCH, "worker", "--no-migrate"], base_env, tmp_path / "worker.log")
        job = api.wait_job(job_id)
        assert job["state"] == "done", f"{job['error']}\n{worker.tail()}"
    finally:
        if worker is not None:
            worker.kill()
        api.stop()


def start_worker(env: dict[str, str], log, *options: str, timeout: float = 180) -> Proc:
    """`latbench worker` once its start is done (recovery included: it logs the line after)."""
    worker = Proc([LATBENCH, "worker", "--no-migrate", *options], env, log)
    deadline = time.monotonic() + timeout
    while "worker started" not in log.read_text(errors="replace"):
        assert worker.popen.poll() is None, worker.tail()
        assert time.monotonic() < deadline, f"worker not started in {timeout:g} s:\n{worker.tail()}"
        time.sleep(0.3)
    return worker


def test_restarts_spend_no_attempt_of_jobs_that_never_started(base_env, tmp_path):
    """Jobs queued while no runner takes them (`latbench worker --no-local-runner`: recovery and
    the reaper, nothing that exports or measures) outlive as many worker restarts as the attempt
    cap, still queued at attempt 1; a worker with its runner then measures them. Before, each
    start's recovery spent an attempt of every queued job and the cap'th failed them."""
    env = base_env | {"LATBENCH_MAX_ATTEMPTS": "2"}
    api = Server(env, tmp_path / "api.log", "--no-worker")
    worker = None
    try:
        ids = []
        for seed in (1, 2):
            body = {"model": {"model": "mobileone_s0", "input": {"height": 32, "width": 32}},
                    "formats": ["onnx"], "settings": {**FAST, "seed": seed}}  # fmt: skip
            accepted = api.http.post("/profile", json=body)
            assert accepted.status_code == 202, accepted.text
            ids.append(accepted.json()["jobs"][0]["id"])
        for n in range(3):  # one more start than the cap allows attempts
            start_worker(env, tmp_path / f"idle-{n}.log", "--no-local-runner").kill()
            views = [api.http.get(f"/jobs/{i}").json() for i in ids]
            assert [(v["state"], v["attempt"]) for v in views] == [("queued", 1)] * 2, views
        worker = start_worker(env, tmp_path / "worker.log")
        for job_id in ids:
            job = api.wait_job(job_id)
            assert (job["state"], job["attempt"]) == ("done", 1), f"{job['error']}\n{worker.tail()}"
    finally:
        if worker is not None:
            worker.kill()
        api.stop()


def test_settings_in_the_environment_are_not_overwritten(base_env, tmp_path):
    """LATBENCH_LOCAL_RUNNER=false holds: nothing measures this host, so a profile of its class
    is refused instead of queued."""
    served = Server(base_env | {"LATBENCH_LOCAL_RUNNER": "false"}, tmp_path / "server.log")
    try:
        refused = served.http.post(
            "/profile", json={"model": "mobileone_s0", "settings": FAST, "predict": False}
        )
        assert refused.status_code == 422, refused.text
        assert "LATBENCH_LOCAL_RUNNER=false" in refused.json()["detail"]
    finally:
        served.stop()
