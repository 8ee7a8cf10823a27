"""POST /gate-runs stores a gate run with the caller's labels, one row per pair, each pair's
verdict recomputed by the server from the comparisons stored for the compare jobs it names (a
claimed verdict they do not bear out is refused); GET /gate-runs filters by repository, model
and device; the model page lists the model's gate runs per device."""

from __future__ import annotations

import statistics

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.db.comparisons import record_comparison
from service.db.jobs import get_job
from tests.service.doubles import RecordingDispatcher

SLOWER = [1.19, 1.21, 1.20, 1.22, 1.18, 1.20]  # a regression past 5%, CI well above 1
SAME = [1.00, 0.99, 1.01, 1.00, 1.00, 0.99]  # a pass
MODEL = "mobileone_s1"  # the candidate: its dashboard page lists the runs


@pytest.fixture
def http(settings):
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher())) as client:
        yield client


def compared(http, device: str, ratios: list[float]) -> tuple[str, dict[str, str]]:
    """A done compare job of mobileone_s0 -> s1 on ``device`` whose session pairs gave
    ``ratios``: (job id, role -> artifact key as the gate posts it)."""
    accepted = http.post(
        "/compare",
        json={"baseline": "mobileone_s0", "candidate": "mobileone_s1", "devices": [device],
              "force": True},
    )  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["jobs"][0]["id"]
    ratio = statistics.geometric_mean(ratios)
    record = {"ratio": ratio, "ci95": [min(ratios), max(ratios)], "per_reload_ratios": ratios,
              "reloads": len(ratios), "a": {"median": 1.0}, "b": {"median": ratio}}  # fmt: skip
    with http.app.state.sessions() as session:
        job = get_job(session, job_id=job_id)
        record_comparison(session, job=job, model="net", runner_id=None, measurement=record)
        keys = {role: f"{job.specs[role]}-onnx-fp32" for role in ("baseline", "candidate")}
    return job_id, keys


def pair(device: str, verdict: str, job_id: str, keys: dict[str, str]) -> dict:
    """As the gate posts a pair, with a ratio and interval unlike the stored comparisons' (1.25
    in [1.1, 1.3]): what the server stores must be what it computed, not the claim."""
    return {"model": MODEL, "device": device, "verdict": verdict, "threshold": 0.05,
            "ratio": 1.25, "ci": [1.1, 1.3], "jobs": [job_id], **keys}  # fmt: skip


def run(pairs: list[dict], verdict: str = "regression", **labels) -> dict:
    return {"labels": labels, "verdict": verdict, "metric": "wall", "rule": "r", "pairs": pairs}


@pytest.fixture
def two_pairs(http) -> list[dict]:
    """A regression on x86_64 and a pass on arm64, as the gate would post them."""
    slow, slow_keys = compared(http, "cpu-x86_64", SLOWER)
    same, same_keys = compared(http, "cpu-arm64", SAME)
    return [pair("cpu-x86_64", "regression", slow, slow_keys),
            pair("cpu-arm64", "pass", same, same_keys)]  # fmt: skip


def test_a_gate_run_is_stored_with_its_labels_and_listed_by_filter(http, two_pairs):
    labels = {"repository": "org/net", "branch": "feat", "commit": "abc1234", "pr": "17",
              "extra": {"ci": "gha"}}  # fmt: skip
    stored = http.post("/gate-runs", json=run(two_pairs, **labels))
    assert stored.status_code == 201, stored.text
    assert stored.json()["pairs"] == 2
    http.post("/gate-runs", json=run(two_pairs, repository="org/other"))

    listed = http.get("/gate-runs", params={"repository": "org/net"}).json()["data"]
    assert sorted((r["device_class"], r["verdict"]) for r in listed) == [
        ("cpu-arm64", "pass"),
        ("cpu-x86_64", "regression"),
    ]
    first = next(r for r in listed if r["device_class"] == "cpu-x86_64")
    assert (first["run_id"], first["commit"], first["pr"]) == (stored.json()["id"], "abc1234", "17")
    assert first["labels"] == {"ci": "gha"} and first["jobs"] == two_pairs[0]["jobs"]
    low, high = first["ci95"]  # the server's interval, not the one claimed ([1.1, 1.3])
    assert 1.0 < low < first["ratio"] < high < 1.3 and first["ratio"] == pytest.approx(1.2, 0.01)
    arm = http.get("/gate-runs", params={"model": MODEL, "device": "cpu-arm64"}).json()["data"]
    assert len(arm) == 2 and {r["verdict"] for r in arm} == {"pass"}
    assert http.get("/gate-runs", params={"model": "other"}).json()["data"] == []


def test_a_false_verdict_is_refused_and_not_stored(http, two_pairs):
    passed = [{**two_pairs[0], "verdict": "pass"}, two_pairs[1]]
    claimed = http.post("/gate-runs", json=run(passed, verdict="pass"))
    assert (claimed.status_code, claimed.json()["field"]) == (422, "pairs.0.verdict")
    assert "regression" in claimed.json()["detail"]
    overall = http.post("/gate-runs", json=run(two_pairs, verdict="pass"))
    assert (overall.status_code, overall.json()["field"]) == (422, "verdict")
    swapped = [{**two_pairs[0], "jobs": two_pairs[1]["jobs"]}, two_pairs[1]]
    other = http.post("/gate-runs", json=run(swapped))
    assert (other.status_code, other.json()["field"]) == (422, "pairs.0.jobs")
    assert http.get("/gate-runs").json()["data"] == []


def test_a_gate_run_naming_an_unknown_job_or_bad_fields_is_refused_and_not_stored(http, two_pairs):
    unknown = http.post("/gate-runs", json=run([{**two_pairs[0], "jobs": ["f" * 32]}]))
    assert (unknown.status_code, unknown.json()["field"]) == (404, "pairs.0.jobs")
    unnamed = http.post("/gate-runs", json=run([{**two_pairs[0], "jobs": []}]))
    assert unnamed.status_code == 422 and unnamed.json()["field"].startswith("pairs.0.jobs")
    bad = http.post("/gate-runs", json={**run(two_pairs), "metric": "gpu"})
    assert (bad.status_code, bad.json()["field"]) == (422, "metric")
    forged = http.post("/gate-runs", json=run([{**two_pairs[0], "candidate": "../x"}]))
    assert forged.status_code == 422 and forged.json()["field"].startswith("pairs.0.candidate")
    nan = http.post(
        "/gate-runs",
        content=b'{"verdict": "pass", "metric": "wall", "rule": "r", "pairs": [{"ratio": NaN}]}',
        headers={"content-type": "application/json"},
    )
    assert (nan.status_code, nan.json()["field"]) == (422, "pairs.0.ratio")
    assert http.get("/gate-runs").json()["data"] == []


def test_the_model_page_lists_its_gate_runs_per_device(http, two_pairs):
    http.post("/gate-runs", json=run(two_pairs, repository="org/net"))
    spec_hash = two_pairs[0]["candidate"].split("-")[0]
    page = http.get(f"/dashboard/models/{spec_hash}")
    assert page.status_code == 200, page.text
    assert "Gate runs per device" in page.text and "org/net" in page.text
    assert "<h3>cpu-arm64</h3>" in page.text and "<h3>cpu-x86_64</h3>" in page.text
    assert "regression" in page.text
