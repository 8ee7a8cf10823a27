"""The app over HTTP (TestClient) with a recording dispatcher, so jobs stay where the API put them:
request shape, coalescing, cache, errors naming fields, limits, auth, and the runner protocol."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from exporters.artifacts import ArtifactStore
from exporters.formats import DeviceClass
from service.app import create_app
from tests.service.backends import redis_namespace
from tests.service.doubles import RecordingDispatcher
from tests.service.test_db import _mark_exported

FAST = {"threads": 1, "max_seconds": 1.0}


def body(**extra):
    return {"model": "mobileone_s0", "formats": ["onnx"], "settings": FAST, **extra}


def make_app(settings, dispatcher=None):
    """The app with a dispatcher that serves this CPU's class, as the embedded one does."""
    return create_app(settings, dispatcher=dispatcher or RecordingDispatcher.this_host())


def exported(client, job_id, artifact_key="a" * 32 + "-onnx-fp32"):
    """Leave the job as the export step would (nothing exports behind a recording dispatcher)."""
    with client.app.state.sessions() as session:
        _mark_exported(session, job_id, artifact_key=artifact_key)
    return job_id


@pytest.fixture
def client(settings):
    with TestClient(make_app(settings)) as c:
        yield c


@pytest.mark.redis
def test_profile_makes_one_job_per_device_and_coalesces_repeats(settings):
    settings.dispatcher = "celery"  # the local dispatcher serves this host's CPU class only
    with redis_namespace() as (redis_url, namespace):
        settings.broker_url, settings.queue_namespace = redis_url, namespace
        with TestClient(create_app(settings)) as client:
            # no runner is online: predict=False queues the jobs for runners to come
            wait = {"predict": False}
            first = client.post("/profile", json=body(devices=["cpu-x86_64", "cpu-arm64"], **wait))
            again = client.post("/profile", json=body(devices=["cpu-x86_64"], **wait))
            other = client.post(
                "/profile",
                json=body(devices=["cpu-x86_64"], settings={**FAST, "threads": 2}, **wait),
            )
            listed = client.get("/jobs", params={"device": "cpu-arm64"}).json()
    assert first.status_code == 202
    jobs = first.json()["jobs"]
    assert [(j["device"], j["state"]) for j in jobs] == [
        ("cpu-x86_64", "queued"),
        ("cpu-arm64", "queued"),
    ]
    assert again.json()["jobs"][0]["id"] == jobs[0]["id"]
    assert other.json()["jobs"][0]["id"] != jobs[0]["id"]
    assert listed["count"] == 1 and listed["data"][0]["id"] == jobs[1]["id"]


def test_coalescing_submits_each_new_job_once_without_a_broker(settings):
    """The same promise as the Redis test above, with the queue replaced by a recorder: what the
    job service hands the dispatcher is one submission per new job, none for a repeat."""
    dispatcher = RecordingDispatcher([DeviceClass.CPU_X86_64, DeviceClass.CPU_ARM64])
    with TestClient(make_app(settings, dispatcher)) as client:
        first = client.post("/profile", json=body(devices=["cpu-x86_64", "cpu-arm64"])).json()
        again = client.post("/profile", json=body(devices=["cpu-arm64", "cpu-x86_64"])).json()
        other = client.post("/profile", json=body(settings={**FAST, "threads": 2})).json()
        forced = client.post("/profile", json=body(force=True)).json()
    ids = [j["id"] for j in first["jobs"]]
    assert sorted(j["id"] for j in again["jobs"]) == sorted(ids)
    assert not any(j["cached"] for j in again["jobs"])  # joined unfinished jobs: not results
    assert other["jobs"][0]["id"] not in ids
    assert forced["jobs"][0]["id"] == ids[0]  # force skips finished results, not queued twins
    assert dispatcher.submitted == [(ids[0], 1), (ids[1], 1), (other["jobs"][0]["id"], 1)]


@pytest.mark.parametrize(
    "payload, status, field",
    [
        ({"model": "mobileone_s9000"}, 422, "model"),
        ({"model": "mobileone_s0", "settings": {"threads": 0}}, 422, "settings.threads"),
        ({"model": "mobileone_s0", "devices": ["toaster"]}, 422, "devices.0"),
        ({"model": "mobileone_s0", "colour": "red"}, 422, "colour"),
        (
            {"model": {"model": "mobileone_s0", "overrides": {"pretrained": True}}},
            422,
            "overrides.pretrained",
        ),
        (
            {"model": "mobileone_s0", "devices": ["iphone12-class"], "formats": ["onnx"]},
            422,
            "formats",
        ),
        (
            {"model": "mobileone_s0", "devices": ["gpu-cuda"]},
            422,
            "devices",
        ),  # local: this CPU only
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(client, payload, status, field):
    response = client.post("/profile", json=payload)
    assert response.status_code == status
    assert response.json()["field"] == field


def test_local_dispatcher_without_its_runner_refuses_jobs_it_cannot_measure(settings):
    settings.local_runner = False
    with TestClient(create_app(settings)) as client:  # the real embedded dispatcher, runner off
        response = client.post("/profile", json=body())
        listed = client.get("/jobs").json()
    assert response.status_code == 422 and response.json()["field"] == "devices"
    assert "LATBENCH_LOCAL_RUNNER" in response.json()["detail"]
    assert listed["count"] == 0


def test_body_over_the_bound_is_refused(client, settings):
    padding = "x" * (settings.max_body_bytes + 1)
    response = client.post("/profile", json={"model": padding})
    assert response.status_code == 413
    assert "LATBENCH_MAX_BODY_BYTES" in response.json()["detail"]


def test_chunked_body_over_the_bound_is_refused_with_413(client, settings):
    def chunks():  # no Content-Length: the bound is found while reading
        for _ in range(settings.max_body_bytes // 1024 + 2):
            yield b" " * 1024

    response = client.post(
        "/profile", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLargeError"
    assert "LATBENCH_MAX_BODY_BYTES" in response.json()["detail"]


def test_per_user_queue_bound_answers_429(settings):
    settings.max_queued_per_user = 1
    with TestClient(make_app(settings)) as client:
        assert client.post("/profile", json=body()).status_code == 202
        response = client.post("/profile", json=body(settings={**FAST, "threads": 2}))
    assert response.status_code == 429


def test_quota_is_checked_for_the_whole_request_before_any_job(settings):
    two = body(devices=["cpu-x86_64", "cpu-arm64"])
    settings.max_queued_per_user = 1
    with TestClient(make_app(settings, RecordingDispatcher())) as client:
        refused = client.post("/profile", json=two)
        assert client.get("/jobs").json()["count"] == 0  # not one of the two was created
        settings.max_queued_per_user = 2
        first = client.post("/profile", json=two)
        again = client.post("/profile", json=two)  # joins the queued jobs: nothing new
        third = client.post("/profile", json=body(settings={**FAST, "threads": 2}))
    assert refused.status_code == 429 and "LATBENCH_MAX_QUEUED_PER_USER" in refused.text
    assert first.status_code == again.status_code == 202
    assert [j["id"] for j in again.json()["jobs"]] == [j["id"] for j in first.json()["jobs"]]
    assert third.status_code == 429


def test_api_token_is_required_when_set(settings):
    settings.api_token = "t" * 20
    with TestClient(make_app(settings)) as client:
        assert client.get("/jobs").status_code == 401
        assert client.get("/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = client.get("/jobs", headers={"Authorization": f"Bearer {'t' * 20}"})
        assert client.get("/healthz").status_code == 200
    assert ok.status_code == 200


def test_non_ascii_bearer_token_is_a_401_not_a_500(settings):
    settings.api_token, settings.runner_token = "t" * 20, "r" * 20
    odd = {"Authorization": "Bearer t\u00e9".encode("latin-1")}
    with TestClient(make_app(settings), raise_server_exceptions=False) as client:
        jobs = client.get("/jobs", headers=odd)
        runner = client.post("/runners", json={"device_class": "cpu-x86_64"}, headers=odd)
    assert (jobs.status_code, jobs.json()["error"]) == (401, "AuthError")
    assert (runner.status_code, runner.json()["error"]) == (401, "AuthError")


def test_runner_protocol_records_one_result_and_serves_it(client):
    job_id = exported(client, client.post("/profile", json=body()).json()["jobs"][0]["id"])
    reg = client.post("/runners", json={"device_class": "cpu-x86_64"}).json()
    auth = {"Authorization": f"Bearer {reg['token']}"}
    base = f"/runners/{reg['id']}"
    assert client.post(f"{base}/heartbeat").status_code == 401
    assert client.post(f"{base}/heartbeat", headers=auth).status_code == 204
    assert (
        client.post(
            f"{base}/claim", json={"job_id": job_id, "attempt": 2}, headers=auth
        ).status_code
        == 409
    )
    assert (
        client.post(
            f"{base}/claim", json={"job_id": job_id, "attempt": 1}, headers=auth
        ).status_code
        == 204
    )
    assert client.get("/devices").json()["data"][0]["current_job_id"] == job_id
    bad = client.post(
        f"{base}/results", json={"job_id": job_id, "attempt": 1, "result": {}}, headers=auth
    )
    assert bad.status_code == 422 and bad.json()["field"] == "result.latency_ms"
    measurement = {
        "latency_ms": {"median": 4.2, "p90": 4.5, "ci95": [4.1, 4.3], "n": 30},
        "device": {"cpu_model": "test"},
        "host_load": {"others_cpu_pct": 1.0},
        "conditions": {"start": {"power_source": {"value": None, "unavailable": "no battery"}}},
    }
    other = client.post("/runners", json={"device_class": "cpu-x86_64"}).json()
    stolen = client.post(
        f"/runners/{other['id']}/results",
        headers={"Authorization": f"Bearer {other['token']}"},
        json={"job_id": job_id, "attempt": 1, "result": measurement},
    )
    assert stolen.status_code == 409 and "does not hold" in stolen.json()["detail"]
    failed_by_other = client.post(
        f"/runners/{other['id']}/failures",
        headers={"Authorization": f"Bearer {other['token']}"},
        json={"job_id": job_id, "attempt": 1, "error": "not mine"},
    )
    assert (
        failed_by_other.status_code == 409 and "does not hold" in failed_by_other.json()["detail"]
    )
    assert client.get(f"/jobs/{job_id}").json()["state"] == "measuring"
    stale = client.post(
        f"{base}/results",
        headers=auth,
        json={"job_id": job_id, "attempt": 2, "result": measurement},
    )
    assert stale.status_code == 409 and "attempt 2" in stale.json()["detail"]
    assert client.get(f"/jobs/{job_id}").json()["state"] == "measuring"
    posts = [
        client.post(
            f"{base}/results",
            headers=auth,
            json={"job_id": job_id, "attempt": 1, "result": measurement},
        )
        for _ in range(3)
    ]
    assert {p.json()["result_id"] for p in posts} == {posts[0].json()["result_id"]}
    job = client.get(f"/jobs/{job_id}").json()
    assert job["state"] == "done" and job["result"]["latency_ms"]["median"] == 4.2
    assert job["result"]["conditions"] == measurement["conditions"]  # served back as posted
    csv_text = client.get("/results", params={"format": "csv", "model": "mobileone_s0"}).text
    assert len(csv_text.strip().splitlines()) == 2 and ",4.2,4.5," in csv_text
    assert client.post("/profile", json=body()).json()["jobs"][0]["cached"] is True
    assert client.post("/profile", json=body(force=True)).json()["jobs"][0]["id"] != job_id
    assert 'latbench_jobs{state="done"} 1.0' in client.get("/metrics").text.splitlines()


@pytest.mark.parametrize(
    "measurement, field",
    [
        ({"latency_ms": {"median": 1.0}, "notes": "x"}, "result.notes"),
        ({"latency_ms": {"median": 1.0, "ci95": [1]}}, "result.latency_ms.ci95.1"),
        ({"latency_ms": {"median": 1.0, "p90": "slow"}}, "result.latency_ms.p90"),
        ({"latency_ms": {"median": 1.0}, "device": []}, "result.device"),
        ({"latency_ms": {"median": 1.0}, "samples_ms": [1, None]}, "result.samples_ms.1"),
        ({"latency_ms": {"median": -4.2}}, "result.latency_ms"),
        ({"latency_ms": {"median": 0.0}}, "result.latency_ms"),
        ({"latency_ms": {"median": 4.2, "p90": 3.0}}, "result.latency_ms"),
        ({"latency_ms": {"median": 4.2, "p90": 4.5, "p99": 4.4}}, "result.latency_ms"),
        ({"latency_ms": {"median": 4.2, "min": 4.3}}, "result.latency_ms"),
        ({"latency_ms": {"median": 4.2, "ci95": [4.3, 4.5]}}, "result.latency_ms"),
        ({"latency_ms": {"median": 4.2, "n": 0}}, "result.latency_ms.n"),
        ({"latency_ms": {"median": 4.2, "std": -1}}, "result.latency_ms"),
        ({"latency_ms": {"median": 4.2}, "samples_ms": [4.2, -1.0]}, "result.samples_ms.1"),
        ({"latency_ms": {"median": 4.2}, "cpu_ms": {"median": 1.0, "p90": 0.5}}, "result.cpu_ms"),
    ],
)
def test_malformed_measurement_is_refused_naming_the_field(client, measurement, field):
    job_id = exported(client, client.post("/profile", json=body()).json()["jobs"][0]["id"])
    reg = client.post("/runners", json={"device_class": "cpu-x86_64"}).json()
    auth = {"Authorization": f"Bearer {reg['token']}"}
    claim = {"job_id": job_id, "attempt": 1}
    client.post(f"/runners/{reg['id']}/claim", json=claim, headers=auth)
    posted = client.post(
        f"/runners/{reg['id']}/results", json={**claim, "result": measurement}, headers=auth
    )
    assert posted.status_code == 422 and posted.json()["field"] == field
    assert client.get(f"/jobs/{job_id}").json()["state"] == "measuring"
    assert client.get("/results").status_code == 200


def test_an_invented_result_never_becomes_the_cached_answer(client):
    """A negative latency is refused, the job stays with its runner, and a later request for the
    same measurement is not answered from it."""
    job_id = exported(client, client.post("/profile", json=body()).json()["jobs"][0]["id"])
    reg = client.post("/runners", json={"device_class": "cpu-x86_64"}).json()
    auth = {"Authorization": f"Bearer {reg['token']}"}
    claim = {"job_id": job_id, "attempt": 1}
    assert client.post(f"/runners/{reg['id']}/claim", json=claim, headers=auth).status_code == 204
    invented = {"latency_ms": {"median": -1.0, "p90": -0.5, "n": 30}}
    posted = client.post(
        f"/runners/{reg['id']}/results", json={**claim, "result": invented}, headers=auth
    )
    assert posted.status_code == 422 and "negative" in posted.json()["detail"]
    assert client.get("/results").json()["count"] == 0
    again = client.post("/profile", json=body()).json()["jobs"][0]
    assert again["id"] == job_id and again["cached"] is False


def test_a_runner_claims_only_its_class_and_exported_jobs(client):
    job_id = client.post("/profile", json=body()).json()["jobs"][0]["id"]
    other_class = "cpu-arm64" if DeviceClass.of_this_cpu().value == "cpu-x86_64" else "cpu-x86_64"
    foreign = client.post("/runners", json={"device_class": other_class}).json()
    own = client.post("/runners", json={"device_class": DeviceClass.of_this_cpu().value}).json()

    def claim(runner):
        return client.post(
            f"/runners/{runner['id']}/claim",
            json={"job_id": job_id, "attempt": 1},
            headers={"Authorization": f"Bearer {runner['token']}"},
        )

    early = claim(own)
    assert early.status_code == 409 and "exported" in early.json()["detail"]
    exported(client, job_id)
    wrong = claim(foreign)
    assert wrong.status_code == 409 and "may not claim it" in wrong.json()["detail"]
    assert claim(own).status_code == 204


def test_a_runner_fetches_only_the_artifact_of_the_job_it_holds(client, settings):
    key = "b" * 32 + "-onnx-fp32"

    def produce(path):
        path.write_bytes(b"onnx")
        return {}

    ArtifactStore(settings.data_dir).put(key, produce)
    job_id = exported(client, client.post("/profile", json=body()).json()["jobs"][0]["id"], key)
    holder, other = (
        client.post("/runners", json={"device_class": "cpu-x86_64"}).json() for _ in "ab"
    )

    def fetch(runner):
        return client.get(
            f"/runners/{runner['id']}/artifacts/{key}",
            headers={"Authorization": f"Bearer {runner['token']}"},
        )

    assert fetch(holder).status_code == 404  # not claimed yet
    claim = {"job_id": job_id, "attempt": 1}
    auth = {"Authorization": f"Bearer {holder['token']}"}
    assert (
        client.post(f"/runners/{holder['id']}/claim", json=claim, headers=auth).status_code == 204
    )
    refused = fetch(other)
    assert refused.status_code == 404 and "holds no job" in refused.json()["detail"]
    assert fetch(holder).content == b"onnx"


def test_artifact_keys_cannot_name_paths(client):
    """Past the holder check: a job that holds a dot-dot key (no server path writes one; a
    tampered row) is refused by the store's key check with a 422, never resolved as a path."""
    reg = client.post("/runners", json={"device_class": "cpu-x86_64"}).json()
    auth = {"Authorization": f"Bearer {reg['token']}"}
    job_id = exported(client, client.post("/profile", json=body()).json()["jobs"][0]["id"], "..")
    claim = {"job_id": job_id, "attempt": 1}
    assert client.post(f"/runners/{reg['id']}/claim", json=claim, headers=auth).status_code == 204
    response = client.get(f"/runners/{reg['id']}/artifacts/%2E%2E", headers=auth)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "artifact" and "malformed" in response.json()["detail"]


def test_a_runner_fails_only_the_job_it_holds(client):
    job_id = exported(client, client.post("/profile", json=body()).json()["jobs"][0]["id"])
    holder, other = (
        client.post("/runners", json={"device_class": "cpu-x86_64"}).json() for _ in "ab"
    )

    def post_failure(runner):
        return client.post(
            f"/runners/{runner['id']}/failures",
            headers={"Authorization": f"Bearer {runner['token']}"},
            json={"job_id": job_id, "attempt": 1, "error": "onnxruntime crashed"},
        )

    auth = {"Authorization": f"Bearer {holder['token']}"}
    claim = {"job_id": job_id, "attempt": 1}
    assert (
        client.post(f"/runners/{holder['id']}/claim", json=claim, headers=auth).status_code == 204
    )
    assert post_failure(other).status_code == 409
    assert post_failure(holder).status_code == 204
    job = client.get(f"/jobs/{job_id}").json()
    assert job["state"] == "failed" and "onnxruntime crashed" in job["error"]
