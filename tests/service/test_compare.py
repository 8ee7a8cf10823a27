"""The compare kind on the embedded path: the real kind runs A/B mode on real onnxruntime through
the database port and its one result is validated and stored apart from measurements; POST
/compare coalesces by both sides, the device and the settings, and refuses what it cannot take;
the client (remote_compare) raises the server's refusal and a failed job's error."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from devices.jobs.execute import run_task
from devices.jobs.port import Host, JobTask
from devices.results import ComparisonRecord
from devices.settings import MeasureSettings
from exporters.artifacts import ArtifactStore
from exporters.errors import RunnerError, SpecError
from exporters.formats import DeviceClass
from exporters.spec import parse_spec
from service.app import create_app
from service.db import jobs, runners
from service.db.comparisons import comparison_for
from service.dispatch.local import DatabasePort, local_runner_id
from service.jobs import steps
from service.remote import remote_compare
from tests.service.doubles import OCTET, RecordingDispatcher
from tests.service.test_db import _mark_exported

# stored specs must hash to their keys: two real specs stand for the two hand-built graphs
SPECS = {
    role: parse_spec({"model": "mobileone_s0", "input": {"height": side, "width": side}})
    for role, side in (("baseline", 64), ("candidate", 128))
}
HASHES = {role: spec.content_hash() for role, spec in SPECS.items()}
KEYS = {role: f"{h}-onnx-fp32" for role, h in HASHES.items()}
THIS_CPU = DeviceClass.of_this_cpu()
FAST = {
    "threads": 1,
    "warmup_max_seconds": 0.2,
    "warmup_max_iters": 20,
    "ab_reloads": 4,
    "ab_blocks": 6,
}


def matmul_chain(path, depth: int) -> None:
    """An ONNX graph of ``depth`` chained 128x128 MatMuls: cost grows with depth."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(depth)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128, 128])
    y = helper.make_tensor_value_info(f"h{depth}", TensorProto.FLOAT, [1, 128, 128])
    weights = [
        numpy_helper.from_array(rng.standard_normal((128, 128), dtype=np.float32) / 12, f"w{i}")
        for i in range(depth)
    ]
    nodes = [
        helper.make_node("MatMul", ["x" if i == 0 else f"h{i}", f"w{i}"], [f"h{i + 1}"])
        for i in range(depth)
    ]
    graph = helper.make_graph(nodes, "chain", [x], [y], initializer=weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.fixture
def compare_job(sessions, settings):
    """A queued compare job whose two artifacts (1 and 8 MatMuls) are in the server's store."""
    store = ArtifactStore(settings.data_dir)
    for role, depth in (("baseline", 1), ("candidate", 8)):
        store.put(KEYS[role], lambda path, depth=depth: matmul_chain(path, depth) or {})
    with sessions() as s:
        for role, spec_hash in HASHES.items():
            jobs.upsert_spec(
                s, spec_hash=spec_hash, model=role, family=None, body=SPECS[role].identity()
            )
        job, _ = jobs.create_or_coalesce(
            s,
            spec_hash=HASHES["baseline"],
            device_class="cpu-x86_64",
            fmt="onnx",
            settings=FAST,
            request_key="c" * 64,
            user="u",
            kind="compare",
            specs=HASHES,
        )
        # exported: a runner may claim only a job whose artifacts exist
        _mark_exported(s, job.id, artifact_key=KEYS["baseline"], artifact_keys=KEYS)
        runners.register_runner(
            s, device_class="cpu-x86_64", description={}, runner_id=local_runner_id()
        )
    return JobTask(job.id, 1, "cpu-x86_64", "onnx", KEYS["baseline"], FAST, "compare", KEYS)


def test_the_compare_kind_runs_on_the_database_port_and_stores_one_comparison(
    sessions, settings, compare_job
):
    port = DatabasePort(sessions, settings.data_dir, local_runner_id())
    run_task(port, compare_job, Host(lock_path=settings.host_lock))
    with sessions() as s:
        job = jobs.get_job(s, job_id=compare_job.job_id)
        row = comparison_for(s, job_id=job.id)
        assert jobs.result_for(s, job_id=job.id) is None  # not a profile measurement
    assert job.state == "done", job.error
    stored = ComparisonRecord.model_validate(row.comparison)
    assert stored.ratio == row.ratio and stored.ratio > 2  # eight MatMuls against one
    assert stored.ci95[0] > 1 and stored.reloads == 4 and len(stored.per_reload_ratios) == 4
    assert stored.b.median > stored.a.median and stored.a.ci95[0] <= stored.a.median
    assert stored.cpu_ratio is not None and stored.cpu_ratio.ratio > 2  # one thread: CPU time
    assert stored.device["runtime"] == "onnxruntime" and stored.settings["ab_blocks"] == 6
    assert "others_cpu_pct" in stored.host_load
    assert (row.baseline_spec_hash, row.candidate_spec_hash) == tuple(HASHES.values())


def test_a_comparison_outside_the_schema_is_refused_and_nothing_is_stored(sessions, compare_job):
    bad = {"ratio": 2.0, "ci95": [0.5, 1.5], "reloads": 4, "a": {"median": 1}, "b": {"median": 2}}
    with sessions() as s:
        steps.claim(s, job_id=compare_job.job_id, attempt=1, runner_id=local_runner_id())
        with pytest.raises(SpecError, match="result: .*must be positive and contain ratio 2.0"):
            steps.complete(
                s, job_id=compare_job.job_id, attempt=1, runner_id=local_runner_id(), result=bad
            )
        assert jobs.get_job(s, job_id=compare_job.job_id).state == "measuring"
        assert comparison_for(s, job_id=compare_job.job_id) is None


def test_a_compare_task_without_both_artifacts_fails_naming_the_field(tmp_path):
    from tests.service.doubles import FilePort

    port = FilePort(tmp_path / "absent.onnx")
    task = JobTask("j", 1, "cpu-x86_64", "onnx", KEYS["baseline"], FAST, "compare")
    run_task(port, task, Host(lock_path=tmp_path / "lock"))
    assert port.failures == [
        "artifact_keys: a compare job needs a baseline and a candidate artifact"
    ]


@pytest.fixture
def client(settings):
    app = create_app(settings, dispatcher=RecordingDispatcher.this_host())
    with TestClient(app) as c:
        yield c, app


def compare(client, baseline="mobileone_s0", candidate="mobileone_s1", **extra):
    body = {"baseline": baseline, "candidate": candidate, "settings": FAST, **extra}
    return client.post("/compare", json=body)


def test_compare_requests_coalesce_by_both_sides_device_and_settings(client):
    http, app = client
    first = compare(http)
    assert first.status_code == 202, first.text
    accepted = first.json()
    assert accepted["baseline"]["model"] == "mobileone_s0"
    assert accepted["candidate"]["model"] == "mobileone_s1"
    job_id = accepted["jobs"][0]["id"]
    assert compare(http).json()["jobs"][0]["id"] == job_id
    swapped = compare(http, baseline="mobileone_s1", candidate="mobileone_s0").json()
    other = compare(http, settings={**FAST, "ab_reloads": 6}).json()
    same = compare(http, candidate="mobileone_s0").json()  # A/A: what a gate's noise check sends
    assert same["baseline"]["spec_hash"] == same["candidate"]["spec_hash"]
    ids = {job_id, swapped["jobs"][0]["id"], other["jobs"][0]["id"], same["jobs"][0]["id"]}
    assert len(ids) == 4 and len(app.state.dispatcher.submitted) == 4
    job = http.get(f"/jobs/{job_id}").json()
    assert (job["kind"], job["state"], job["result"]) == ("compare", "queued", None)


def test_compare_by_artifact_ids_is_created_exported_and_refusals_name_the_field(client, tmp_path):
    http, app = client
    ids = {}
    for role, depth in (("baseline", 1), ("candidate", 2)):
        matmul_chain(tmp_path / f"{role}.onnx", depth)
        upload = http.post(
            "/artifacts", content=(tmp_path / f"{role}.onnx").read_bytes(), headers=OCTET
        )
        ids[role] = upload.json()["id"]
    sides = {role: {"artifact": key} for role, key in ids.items()}
    accepted = compare(http, **sides)
    assert accepted.status_code == 202, accepted.text
    assert compare(http, **sides).json()["jobs"] == accepted.json()["jobs"]  # coalesced
    dispatcher = app.state.dispatcher
    assert dispatcher.submitted == []  # both artifacts stored: straight to the device queue
    (task,) = dispatcher.dispatched
    assert (task.kind, task.artifact_keys) == ("compare", ids)

    unknown = compare(http, baseline=sides["baseline"], candidate={"artifact": KEYS["candidate"]})
    assert (unknown.status_code, unknown.json()["field"]) == (404, "candidate.artifact")
    malformed = compare(http, baseline={"artifact": "../etc/passwd"})
    assert malformed.status_code == 422 and malformed.json()["field"].startswith("baseline")
    iphone = compare(http, **sides, devices=["iphone12-class"])
    assert (iphone.status_code, iphone.json()["field"]) == (422, "devices")
    unknown = compare(http, candidate="mobileone_s9")
    assert unknown.status_code == 422 and unknown.json()["field"] == "candidate.model"
    assert dispatcher.submitted == [] and len(dispatcher.dispatched) == 1


def test_remote_compare_raises_the_servers_refusal_and_the_jobs_error(client):
    http, app = client
    settings = MeasureSettings(**FAST)
    with pytest.raises(SpecError, match="^candidate.model: unknown model 'mobileone_s9'"):
        remote_compare("", None, "mobileone_s0", "mobileone_s9", THIS_CPU, settings, http=http)

    states: list[str] = []

    def runner_reports_a_failure(state: str) -> None:
        states.append(state)
        job_id = http.get("/jobs").json()["data"][0]["id"]
        steps.fail(app.state.sessions, job_id=job_id, attempt=1, error="device lost")

    with pytest.raises(RunnerError, match=r"compare job \w+ failed: device lost"):
        remote_compare(
            "",
            None,
            "mobileone_s0",
            "mobileone_s1",
            THIS_CPU,
            settings,
            progress=runner_reports_a_failure,
            poll_s=0.01,
            http=http,
        )
    assert states == ["queued", "failed"]


def test_a_stored_comparison_is_served_by_get_job_with_its_sides(client):
    http, app = client
    job_id = compare(http).json()["jobs"][0]["id"]
    record = {
        "ratio": 1.2,
        "ci95": [1.1, 1.3],
        "reloads": 4,
        "a": {"median": 1.0},
        "b": {"median": 1.2},
        "job_id": "forged",  # a key a runner added: kept in the record, never shown as the id
    }
    with app.state.sessions() as s:
        runners.register_runner(s, device_class="cpu-x86_64", description={}, runner_id="r")
        # as the export step leaves it: both artifacts exist
        _mark_exported(s, job_id, artifact_key=KEYS["baseline"], artifact_keys=KEYS)
        steps.claim(s, job_id=job_id, attempt=1, runner_id="r")
        steps.complete(s, job_id=job_id, attempt=1, runner_id="r", result=record)
    job = http.get(f"/jobs/{job_id}")
    assert job.status_code == 200, job.text
    result = job.json()["result"]
    assert (result["job_id"], result["ratio"], result["runner_id"]) == (job_id, 1.2, "r")
    assert [result[side]["model"] for side in ("baseline", "candidate")] == [
        "mobileone_s0",
        "mobileone_s1",
    ]
    assert result["cpu_ratio"] is None and result["weights"] == "random"
