"""The distributed backend with real parts: PostgreSQL, the Redis broker, the export worker that
`latbench serve --dispatcher celery` starts, and `latbench runner` processes; a runner killed
mid-measurement loses its job to another runner; a compare job runs on a remote runner."""

from __future__ import annotations

import signal
import time

import pytest

from devices.settings import MeasureSettings
from exporters.formats import DeviceClass
from service.gate import Verdict, decide, ratio_interval
from service.gate.compare import from_record
from service.remote import remote_compare
from tests.e2e.conftest import FAST, FAST_AB, LARGE, LATBENCH, SMALL, Proc, Server, celery_server
from tests.service.doubles import OCTET
from tests.service.test_compare import matmul_chain

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def server(base_env, tmp_path):
    with celery_server(base_env, tmp_path / "server.log") as (server, _):
        yield server


def start_runner(server: Server, env: dict[str, str], log) -> tuple[Proc, str]:
    """A runner process named after its log (two runners of one credential under one name would be
    one restarted runner, sharing a row); returns it with the id it registered under."""
    before = {d["id"] for d in server.http.get("/devices").json()["data"]}
    proc = Proc(
        [
            LATBENCH,
            "runner",
            "--server",
            server.url,
            "--device-class",
            "cpu-x86_64",
            "--name",
            log.stem,
            "--cache",
            str(log.with_suffix(".cache")),
        ],
        env,
        log,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = {d["id"] for d in server.http.get("/devices").json()["data"]} - before
        if new:
            time.sleep(2)  # registration precedes the Celery consumer: let it subscribe
            return proc, new.pop()
        assert proc.popen.poll() is None, proc.tail()
        time.sleep(0.3)
    raise AssertionError(f"runner did not register:\n{proc.tail()}")


def profile(server: Server, **settings) -> str:
    response = server.http.post(
        "/profile",
        json={"model": "mobileone_s0", "formats": ["onnx"], "settings": {**FAST, **settings}},
    )
    assert response.status_code == 202, response.text
    return response.json()["jobs"][0]["id"]


def test_celery_runner_measures_and_a_killed_runner_loses_its_job(server, base_env, tmp_path):
    first, first_id = start_runner(server, base_env, tmp_path / "runner-a.log")
    try:
        job = server.wait_job(profile(server))
        assert job["state"] == "done", job["error"]
        assert job["result"]["runner_id"] == first_id
        assert job["result"]["latency_ms"]["n"] >= 10

        # A measurement that runs for seconds (precision target out of reach), killed midway.
        slow = profile(server, seed=3, max_seconds=6.0, target_rel_ci=0.0001, max_iters=100000)
        assert server.wait_job(slow, states=("measuring",))["runner_id"] == first_id
        first.kill(signal.SIGKILL)
        second, second_id = start_runner(server, base_env, tmp_path / "runner-b.log")
        try:
            job = server.wait_job(slow)
        finally:
            second.kill()
    finally:
        first.kill()
    assert job["state"] == "done", job["error"]
    # 2, or more where a loaded host delayed the second runner's heartbeat past the timeout
    assert job["attempt"] >= 2 and job["result"]["runner_id"] == second_id
    devices = {d["id"]: d for d in server.http.get("/devices").json()["data"]}
    assert devices[first_id]["online"] is False
    results = server.http.get("/results").json()["data"]
    assert sorted(r["job_id"] for r in results) == sorted({r["job_id"] for r in results})


def compare_on_a_runner(server, env, tmp_path, baseline, candidate):
    """One comparison by a runner process started for it (and ended); with that runner's id."""
    runner, runner_id = start_runner(server, env, tmp_path / "runner.log")
    try:
        record = remote_compare(
            server.url,
            None,
            baseline,
            candidate,
            DeviceClass.CPU_X86_64,
            MeasureSettings(**FAST_AB),
            poll_s=0.3,
            timeout_s=300,
        )
    finally:
        runner.kill()
    return record, runner_id


def test_a_remote_runner_executes_a_compare_job(server, base_env, tmp_path):
    record, runner_id = compare_on_a_runner(server, base_env, tmp_path, SMALL, LARGE)
    assert record.model_extra["runner_id"] == runner_id
    assert record.ratio > 1 and record.cpu_ratio is not None and record.cpu_ratio.ratio > 1.5
    assert record.device["runtime"] == "onnxruntime" and record.reloads == 4
    cache = sorted(p.name for p in (tmp_path / "runner.cache").iterdir())
    assert len(cache) == 2 and all(name.endswith("-onnx-fp32.onnx") for name in cache)


def test_a_remote_runner_compares_an_uploaded_onnx_pair_and_the_gate_decides(
    server, base_env, tmp_path
):
    ids = {}
    for role, depth in (("baseline", 1), ("candidate", 6)):
        matmul_chain(tmp_path / f"{role}.onnx", depth)
        upload = server.http.post(
            "/artifacts", content=(tmp_path / f"{role}.onnx").read_bytes(), headers=OCTET
        )
        assert upload.status_code == 201, upload.text
        ids[role] = upload.json()["id"]
    sides = [{"artifact": ids[role]} for role in ("baseline", "candidate")]
    record, runner_id = compare_on_a_runner(server, base_env, tmp_path, *sides)
    assert record.model_extra["runner_id"] == runner_id and record.reloads == 4
    comparison = from_record(record, DeviceClass.CPU_X86_64)
    interval = ratio_interval(comparison.estimates("wall"), 0.95)
    decision = decide(interval.ratio, interval.ci, 0.05, 0.95)
    assert decision.verdict is Verdict.REGRESSION, decision.explain()  # six MatMuls against one
    job = server.http.get(f"/jobs/{comparison.jobs[0]}").json()
    assert [job["result"][side]["spec_hash"] for side in ("baseline", "candidate")] == [
        key.split("-")[0] for key in ids.values()
    ]
    cache = sorted(p.name for p in (tmp_path / "runner.cache").iterdir())
    assert cache == sorted(f"{key}.onnx" for key in ids.values())  # fetched as uploaded
