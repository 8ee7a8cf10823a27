"""POST /gate-runs stores a gate run's verdicts with the caller's labels, one row per pair, only
for compare jobs of this server; GET /gate-runs filters by repository, model and device; the
model page lists the model's gate runs per device."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.service.doubles import RecordingDispatcher

KEY = "a" * 32 + "-onnx-fp32"


@pytest.fixture
def http(settings):
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher())) as client:
        yield client


def run(jobs: list[str], **labels) -> dict:
    pair = {"model": "net", "device": "cpu-x86_64", "baseline": KEY,
            "candidate": "b" * 32 + "-onnx-fp32", "verdict": "regression", "threshold": 0.05,
            "ratio": 1.2, "ci": [1.1, 1.3], "jobs": jobs}  # fmt: skip
    other = {**pair, "device": "cpu-arm64", "verdict": "pass", "ratio": 1.0, "ci": [0.95, 1.05]}
    return {"labels": labels, "verdict": "regression", "metric": "wall", "rule": "r",
            "pairs": [pair, other]}  # fmt: skip


def test_a_gate_run_is_stored_with_its_labels_and_listed_by_filter(http):
    accepted = http.post("/compare", json={"baseline": "mobileone_s0", "candidate": "mobileone_s1"})
    job_id = accepted.json()["jobs"][0]["id"]
    labels = {"repository": "org/net", "branch": "feat", "commit": "abc1234", "pr": "17",
              "extra": {"ci": "gha"}}  # fmt: skip
    stored = http.post("/gate-runs", json=run([job_id], **labels))
    assert stored.status_code == 201, stored.text
    assert stored.json()["pairs"] == 2
    http.post("/gate-runs", json=run([], repository="org/other"))

    listed = http.get("/gate-runs", params={"repository": "org/net"}).json()["data"]
    assert sorted((r["device_class"], r["verdict"]) for r in listed) == [
        ("cpu-arm64", "pass"),
        ("cpu-x86_64", "regression"),
    ]
    first = next(r for r in listed if r["device_class"] == "cpu-x86_64")
    assert (first["run_id"], first["commit"], first["pr"]) == (stored.json()["id"], "abc1234", "17")
    assert first["labels"] == {"ci": "gha"} and first["jobs"] == [job_id]
    assert first["candidate_spec_hash"] == "b" * 32 and first["ci95"] == [1.1, 1.3]
    arm = http.get("/gate-runs", params={"model": "net", "device": "cpu-arm64"}).json()["data"]
    assert len(arm) == 2 and {r["verdict"] for r in arm} == {"pass"}
    assert http.get("/gate-runs", params={"model": "other"}).json()["data"] == []


def test_a_gate_run_naming_an_unknown_job_or_bad_fields_is_refused_and_not_stored(http):
    unknown = http.post("/gate-runs", json=run(["f" * 32]))
    assert (unknown.status_code, unknown.json()["field"]) == (404, "pairs.0.jobs")
    bad = http.post("/gate-runs", json={**run([]), "metric": "gpu"})
    assert (bad.status_code, bad.json()["field"]) == (422, "metric")
    forged = http.post("/gate-runs", json={**run([]), "pairs": [{**run([])["pairs"][0],
                                                                  "candidate": "../x"}]})  # fmt: skip
    assert forged.status_code == 422 and forged.json()["field"].startswith("pairs.0.candidate")
    assert http.get("/gate-runs").json()["data"] == []


def test_the_model_page_lists_its_gate_runs_per_device(http):
    from service.db.artifacts import record_upload

    with http.app.state.sessions() as session:
        record_upload(session, key=KEY, label="net", path="/x", meta={})
    http.post("/gate-runs", json=run([], repository="org/net"))
    page = http.get(f"/dashboard/models/{'a' * 32}")
    assert page.status_code == 200, page.text
    assert "Gate runs per device" in page.text and "org/net" in page.text
    assert "<h3>cpu-arm64</h3>" in page.text and "<h3>cpu-x86_64</h3>" in page.text
    assert "1.200 [1.100, 1.300]" in page.text and "regression" in page.text
