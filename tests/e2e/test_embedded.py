"""The zero-set-up default: `latbench serve` exports and measures on this host (SQLite, local
worker, real ONNX export of a seed model, real onnxruntime measurement)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from devices.settings import MeasureSettings
from exporters.formats import DeviceClass
from service.remote import remote_compare
from tests.e2e.conftest import FAST, FAST_AB, LARGE, LATBENCH, SMALL, Server, service_env
from tests.e2e.test_faults import assert_all_gone, descendants
from tests.service.doubles import OCTET
from tests.service.test_compare import matmul_chain

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the tests that only add to its state (saves a start and an export)."""
    directory = tmp_path_factory.mktemp("embedded")
    server = Server(service_env(directory), directory / "server.log")
    yield server
    server.stop()


def profile(server: Server, **settings) -> httpx.Response:
    return server.http.post(
        "/profile",
        json={"model": "mobileone_s0", "formats": ["onnx"], "settings": {**FAST, **settings}},
    )


def test_profile_returns_a_measured_result_then_a_cached_one(server):
    accepted = profile(server)
    assert accepted.status_code == 202
    job_id = accepted.json()["jobs"][0]["id"]
    job = server.wait_job(job_id)
    assert job["state"] == "done", job["error"]
    result = job["result"]
    latency = result["latency_ms"]
    assert latency["n"] >= 10 and 0 < latency["ci95"][0] <= latency["median"] <= latency["ci95"][1]
    assert len(result["samples_ms"]) == latency["n"]
    assert result["device"]["runtime"] == "onnxruntime" and result["device"]["threads"] == 1
    assert "others_cpu_pct" in result["host_load"]
    assert result["load_ms"] > 0 and result["warmup_iters"] > 0
    assert result["artifact"]["parity"]["ok"] is True
    assert result["weights"] == "random"
    repeat = profile(server).json()["jobs"][0]
    assert repeat == {**repeat, "id": job_id, "state": "done", "cached": True}


def test_compare_on_the_embedded_runner_finds_the_larger_input_slower(server):
    states: list[str] = []
    record = remote_compare(
        server.url,
        None,
        SMALL,
        LARGE,
        DeviceClass.of_this_cpu(),
        MeasureSettings(**FAST_AB),
        progress=states.append,
        poll_s=0.3,
        timeout_s=240,
    )
    assert states[-1] == "done" and states[0] in ("queued", "exporting", "measuring")
    assert record.ratio > 1 and record.reloads == 4 and len(record.per_reload_ratios) == 4
    assert record.cpu_ratio is not None and record.cpu_ratio.ratio > 1.5  # 4x the pixels
    assert record.b.median > record.a.median and record.a.n == record.b.n
    job = server.http.get(f"/jobs/{record.model_extra['job_id']}").json()
    assert job["kind"] == "compare" and job["result"]["ratio"] == record.ratio
    sides = job["result"]["baseline"], job["result"]["candidate"]
    assert [s["artifact"]["parity"]["ok"] for s in sides] == [True, True]
    measured = server.http.get("/results").json()["data"]
    assert job["id"] not in [r["job_id"] for r in measured]  # comparisons are kept apart
    again = remote_compare(
        server.url, None, SMALL, LARGE, DeviceClass.of_this_cpu(), MeasureSettings(**FAST_AB)
    )
    assert again.model_extra["id"] == record.model_extra["id"]  # answered from the store


def test_100_concurrent_identical_posts_make_one_job_and_one_result(server):
    with ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(lambda _: profile(server, seed=7), range(100)))
    assert {r.status_code for r in responses} == {202}
    ids = {r.json()["jobs"][0]["id"] for r in responses}
    assert len(ids) == 1
    job = server.wait_job(ids.pop())
    assert job["state"] == "done", job["error"]
    results = server.http.get("/results", params={"model": "mobileone_s0"}).json()["data"]
    assert [r["job_id"] for r in results].count(job["id"]) == 1
    seeded = [j for j in server.http.get("/jobs").json()["data"] if j["settings"]["seed"] == 7]
    assert [j["id"] for j in seeded] == [job["id"]]


def test_restart_with_jobs_unfinished_loses_none(base_env, tmp_path):
    """A crash right after two jobs were accepted: one is in its export, one still queued (a
    server with --no-local-runner accepts no job it could not measure). The crash is SIGKILL to
    the server's main process alone: every process it started ends without being told."""
    first = Server(base_env, tmp_path / "first.log")
    ids = [profile(first, seed=seed).json()["jobs"][0]["id"] for seed in (1, 2)]
    states = [first.http.get(f"/jobs/{i}").json()["state"] for i in ids]
    children = descendants(first.popen.pid)
    os.kill(first.popen.pid, signal.SIGKILL)  # a crash of the main process, not a group kill
    first.popen.wait(timeout=30)
    assert_all_gone(children, within_s=60)
    first.stop(signal.SIGKILL)
    assert set(states) <= {"queued", "exporting"} and children
    database = sqlite3.connect(Path(base_env["LATBENCH_DATA_DIR"]) / "latbench.db")
    query = "SELECT state FROM jobs WHERE id = ?"
    crashed = [database.execute(query, (i,)).fetchone()[0] for i in ids]  # as the crash left them
    database.close()
    server = Server(base_env, tmp_path / "server.log")
    try:
        jobs = [server.wait_job(i) for i in ids]
    finally:
        server.stop()
    assert [j["state"] for j in jobs] == ["done", "done"]
    assert all(j["result"]["latency_ms"]["n"] >= 10 for j in jobs)
    # an attempt is spent by the job the crash interrupted, none by one that was only queued
    assert [j["attempt"] for j in jobs] == [
        2 if s in ("exporting", "measuring") else 1 for s in crashed
    ]


def upload(server: Server, path) -> str:
    response = server.http.post(
        "/artifacts", content=path.read_bytes(), params={"name": "chain"}, headers=OCTET
    )
    assert response.status_code in (200, 201), response.text
    return response.json()["id"]


def test_profile_by_artifact_id_is_measured_as_uploaded(server, tmp_path):
    matmul_chain(tmp_path / "chain.onnx", 2)
    key = upload(server, tmp_path / "chain.onnx")
    accepted = server.http.post("/profile", json={"artifact": key, "settings": FAST})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["model"] == "chain"
    job = server.wait_job(accepted.json()["jobs"][0]["id"])
    assert job["state"] == "done", job["error"]
    assert job["spec_hash"] == key.split("-")[0] and job["result"]["latency_ms"]["median"] > 0
    assert job["result"]["device"]["runtime"] == "onnxruntime"
    unknown = server.http.post("/profile", json={"artifact": "f" * 32 + "-onnx-fp32"})
    assert (unknown.status_code, unknown.json()["field"]) == (404, "artifact")
    coreml = server.http.post("/profile", json={"artifact": key, "devices": ["iphone12-class"]})
    assert (coreml.status_code, coreml.json()["field"]) == (422, "devices")


def test_gate_against_the_server_uploads_compares_and_stores_the_run(server, tmp_path):
    for name, depth in (("base", 1), ("slow", 6)):
        matmul_chain(tmp_path / f"{name}.onnx", depth)
    env = service_env(tmp_path / "ci")  # the CI machine's own store: it builds and uploads
    markdown = tmp_path / "comment.md"
    done = subprocess.run(
        [LATBENCH, "gate", "--server", server.url, "--baseline", str(tmp_path / "base.onnx"),
         "--candidate", str(tmp_path / "slow.onnx"), "--repository", "org/chain",
         "--commit", "abc1234", "--pr", "7", "--label", "ci=e2e", "--markdown", str(markdown)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # six MatMuls against one
    assert "uploading 1 pair(s)" in done.stderr and "compare job done" in done.stderr
    runs = server.http.get("/gate-runs", params={"repository": "org/chain"}).json()["data"]
    (run,) = runs
    assert (run["model"], run["verdict"], run["pr"], run["labels"]) == (
        "slow",
        "regression",
        "7",
        {"ci": "e2e"},
    )
    assert len(run["jobs"]) >= 2  # a regression is confirmed by a further, forced round
    jobs = [server.http.get(f"/jobs/{job}").json() for job in run["jobs"]]
    assert {j["kind"] for j in jobs} == {"compare"} and len({j["id"] for j in jobs}) == len(jobs)
    assert f"/dashboard/models/{run['candidate_spec_hash']}" in markdown.read_text()
    page = server.http.get(f"/dashboard/models/{run['candidate_spec_hash']}").text
    assert "org/chain" in page and "regression" in page
