"""Runners provisioned by an admin, not self-declared: a credential registers runners of its
device classes only, so its runners never claim another class's job; revoking it refuses its
runners and stops their results from answering later requests as cached (measured again), while
the stored result stays, marked as its revoked runner's."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.db import jobs, runners
from tests.service.doubles import RecordingDispatcher
from tests.service.test_api import body, exported

SHARED = "the-shared-runner-registration-token"
MEASUREMENT = {"latency_ms": {"median": 4.2, "p90": 4.5, "ci95": [4.1, 4.3], "n": 30}}


@pytest.fixture
def client(settings):
    settings.runner_token = SHARED
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher())) as c:
        yield c


@pytest.fixture
def x86_token(client) -> str:
    with client.app.state.sessions() as session:
        return runners.add_credential(session, name="lab-x86", device_classes=["cpu-x86_64"])


def register(client, token: str, device_class: str, name: str | None = None):
    named = {"name": name} if name else {}
    return client.post(
        "/runners",
        json={"device_class": device_class, **named},
        headers={"authorization": f"Bearer {token}"},
    )


def test_a_credential_registers_its_classes_only(client, x86_token):
    assert register(client, x86_token, "cpu-x86_64").status_code == 201
    refused = register(client, x86_token, "cpu-arm64")
    assert refused.status_code == 401 and "lab-x86" in refused.json()["detail"]
    assert register(client, "no-such-credential-token", "cpu-x86_64").status_code == 401
    assert register(client, SHARED, "cpu-arm64").status_code == 201  # the shared token: any


def test_a_credential_for_one_class_cannot_claim_another_class_job(client, x86_token):
    arm_job = client.post("/profile", json=body(devices=["cpu-arm64"])).json()["jobs"][0]["id"]
    exported(client, arm_job)
    runner = register(client, x86_token, "cpu-x86_64").json()
    claimed = client.post(
        f"/runners/{runner['id']}/claim",
        json={"job_id": arm_job, "attempt": 1},
        headers={"authorization": f"Bearer {runner['token']}"},
    )
    assert claimed.status_code == 409 and "cpu-arm64" in claimed.json()["detail"]
    assert client.get(f"/jobs/{arm_job}").json()["state"] == "queued"


def test_a_revoked_runners_result_is_not_served_as_cached(client, x86_token):
    job_id = exported(
        client, client.post("/profile", json=body(devices=["cpu-x86_64"])).json()["jobs"][0]["id"]
    )
    runner = register(client, x86_token, "cpu-x86_64").json()
    auth = {"authorization": f"Bearer {runner['token']}"}
    claim = {"job_id": job_id, "attempt": 1}
    assert (
        client.post(f"/runners/{runner['id']}/claim", json=claim, headers=auth).status_code == 204
    )
    posted = client.post(
        f"/runners/{runner['id']}/results", json={**claim, "result": MEASUREMENT}, headers=auth
    )
    assert posted.status_code == 201, posted.text
    again = client.post("/profile", json=body(devices=["cpu-x86_64"])).json()["jobs"][0]
    assert (again["id"], again["cached"]) == (job_id, True)

    with client.app.state.sessions() as session:
        assert runners.revoke(session, name="lab-x86") == [runner["id"]]
    fresh = client.post("/profile", json=body(devices=["cpu-x86_64"])).json()["jobs"][0]
    assert fresh["id"] != job_id and fresh["cached"] is False
    shown = client.get(f"/jobs/{job_id}").json()
    assert shown["runner_revoked"] is True and shown["result"]["runner_revoked"] is True
    listed = {r["job_id"]: r["runner_revoked"] for r in client.get("/results").json()["data"]}
    assert listed == {job_id: True}
    assert client.post(f"/runners/{runner['id']}/heartbeat", headers=auth).status_code == 401
    assert register(client, x86_token, "cpu-x86_64").status_code == 401


def test_a_runner_restarted_n_times_is_one_row_and_its_held_job_is_requeued(client, x86_token):
    """A restart registers again under the runner's name: the same row with a new token (the
    old one refused), not a row per start; the job the old registration held goes back to the
    queue at its next attempt, as a silent runner's does."""
    job_id = exported(
        client, client.post("/profile", json=body(devices=["cpu-x86_64"])).json()["jobs"][0]["id"]
    )
    first = register(client, x86_token, "cpu-x86_64", name="lab-host-1").json()
    claim = {"job_id": job_id, "attempt": 1}
    auth = {"authorization": f"Bearer {first['token']}"}
    assert client.post(f"/runners/{first['id']}/claim", json=claim, headers=auth).status_code == 204
    restarts = [register(client, x86_token, "cpu-x86_64", name="lab-host-1") for _ in range(5)]
    assert [r.status_code for r in restarts] == [201] * 5
    assert {r.json()["id"] for r in restarts} == {first["id"]}
    with client.app.state.sessions() as session:
        rows = runners.list_runners(session)
        assert [(r.id, r.name, r.credential) for r in rows] == [
            (first["id"], "lab-host-1", "lab-x86")
        ]
        job = jobs.get_job(session, job_id=job_id)
        assert (job.state, job.attempt) == ("queued", 2)
    assert (job_id, 2) in client.app.state.dispatcher.submitted  # sent again, for its next attempt
    assert client.post(f"/runners/{first['id']}/heartbeat", headers=auth).status_code == 401
    latest = {"authorization": f"Bearer {restarts[-1].json()['token']}"}
    assert client.post(f"/runners/{first['id']}/heartbeat", headers=latest).status_code == 204
    other = register(client, x86_token, "cpu-x86_64", name="lab-host-2").json()
    assert other["id"] != first["id"]  # another name is another runner


def test_registrations_past_the_cap_are_refused_naming_it(client, settings, x86_token):
    """Live rows per credential (and for the shared token) are bounded: past the cap a new name
    is refused with a 429 naming the cap and its setting; a known name still registers, and a
    revoked runner frees its place."""
    settings.max_runners_per_credential = 2
    placed = [register(client, x86_token, "cpu-x86_64", name=n) for n in ("a", "b")]
    assert [r.status_code for r in placed] == [201, 201]
    refused = register(client, x86_token, "cpu-x86_64", name="c")
    assert refused.status_code == 429
    detail = refused.json()["detail"]
    assert "'lab-x86'" in detail and "LATBENCH_MAX_RUNNERS_PER_CREDENTIAL=2" in detail
    assert register(client, x86_token, "cpu-x86_64").status_code == 429  # unnamed: a new row too
    assert register(client, x86_token, "cpu-x86_64", name="a").status_code == 201  # its own row
    shared = [register(client, SHARED, "cpu-arm64").status_code for _ in range(3)]
    assert shared == [201, 201, 429]  # the shared token's own cap
    with client.app.state.sessions() as session:
        runners.revoke(session, name=placed[0].json()["id"])
    assert register(client, x86_token, "cpu-x86_64", name="c").status_code == 201
    with client.app.state.sessions() as session:
        live = [r for r in runners.list_runners(session) if r.revoked_at is None]
    assert sorted(r.name or "" for r in live if r.credential == "lab-x86") == ["b", "c"]


def test_two_registrations_under_one_name_at_once_make_one_row(sessions):
    """The first registration has looked the name up and found it free; a second, meanwhile,
    waits for it (PostgreSQL: the credential's advisory lock; SQLite: its one writer), then finds
    the row and takes it back instead of adding a second row under the same name."""
    import threading

    from sqlalchemy import func, select

    from service.db.tables import RunnerRow

    def register(session, found) -> None:
        runners.lock_registrations(session, credential="lab")
        again = runners.live_named(session, credential="lab", name="pixel")
        found.append(again)
        runners.register_runner(
            session, device_class="cpu-x86", description={}, credential="lab", name="pixel",
            runner_id=again.id if again else None,
        )  # fmt: skip

    second_found: list = []
    with sessions() as first, sessions() as second:
        runners.lock_registrations(first, credential="lab")
        assert runners.live_named(first, credential="lab", name="pixel") is None
        later = threading.Thread(target=register, args=(second, second_found))
        later.start()
        later.join(1.0)
        assert later.is_alive(), "the second registration went ahead of the first's commit"
        runners.register_runner(
            first, device_class="cpu-x86", description={}, credential="lab", name="pixel"
        )
        later.join(30)
    with sessions() as session:
        named = session.scalar(select(func.count()).where(RunnerRow.name == "pixel"))
    assert named == 1
    assert second_found[0] is not None
