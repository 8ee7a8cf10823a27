"""Users and owners: tokens of their own, and uploads private to whoever uploaded them. Two
users cannot see each other's uploads, nor the jobs and results that measure them (the same 404
as an id that does not exist); both see the zoo's results; an admin sees everything."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from exporters.formats import DeviceClass
from service.app import create_app
from service.cli import app as cli
from service.db.jobs import get_job
from service.db.results import record_result
from service.db.tables import UserRow
from service.db.users import add_user, token_digest
from tests.exporters.test_sources import _onnx_model
from tests.service.doubles import OCTET, RecordingDispatcher
from tests.service.test_db import MEASUREMENT, SPEC_HASH
from tests.service.test_present import _done_job, counted

ADMIN = "bootstrap-admin-token-0123456789"
FAST = {"threads": 1, "max_seconds": 1.0}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def team(settings):
    """A server with an API token (the bootstrap admin) and two users; their headers."""
    settings.api_token = ADMIN
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher.this_host())) as client:
        with client.app.state.sessions() as session:
            heads = {n: bearer(add_user(session, name=n, admin=False)) for n in ("alice", "bob")}
        heads["admin"] = bearer(ADMIN)
        yield client, heads


def _measured_upload(client, heads, tmp_path) -> tuple[str, str]:
    """Alice uploads a model and has it measured: (artifact id, job id), the job done."""
    data = _onnx_model(tmp_path).read_bytes()
    key = client.post("/artifacts", content=data, headers={**OCTET, **heads["alice"]}).json()["id"]
    accepted = client.post(
        "/profile",
        json={"artifact": key, "devices": [DeviceClass.of_this_cpu().value], "settings": FAST},
        headers=heads["alice"],
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["jobs"][0]["id"]
    with client.app.state.sessions() as session:
        job = get_job(session, job_id=job_id)
        record_result(session, job=job, model="addnet", runner_id=None, measurement=MEASUREMENT)
    return key, job_id


def test_two_users_see_their_own_uploads_and_both_see_the_zoo(team, tmp_path):
    client, heads = team
    with client.app.state.sessions() as session:
        zoo_job = _done_job(session, 1)  # mobileone_s0: the team's shared fact
    key, job_id = _measured_upload(client, heads, tmp_path)

    def results(who: str) -> set[str]:
        listed = client.get("/results", headers=heads[who])
        assert listed.status_code == 200, listed.text
        return {r["job_id"] for r in listed.json()["data"]}

    def jobs(who: str) -> set[str]:
        return {j["id"] for j in client.get("/jobs", headers=heads[who]).json()["data"]}

    assert results("alice") == results("admin") == {job_id, zoo_job}
    assert results("bob") == {zoo_job}
    assert jobs("alice") == jobs("admin") == {job_id, zoo_job} and jobs("bob") == {zoo_job}
    shown = client.get(f"/jobs/{job_id}", headers=heads["alice"])
    assert shown.status_code == 200 and shown.json()["submitted_by"] == "alice"
    assert shown.json()["result"]["latency_ms"]["median"] == 1.5

    hidden = client.get(f"/jobs/{job_id}", headers=heads["bob"])
    missing = client.get("/jobs/" + "0" * 32, headers=heads["bob"])
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"] == missing.json()["detail"].replace("0" * 32, job_id)
    assert client.get(f"/jobs/{zoo_job}", headers=heads["bob"]).status_code == 200

    upload_hash = key.split("-")[0]
    for page in ("/dashboard/data.json", "/dashboard"):  # unplotted points; recent jobs
        assert upload_hash in client.get(page, headers=heads["alice"]).text, page
        assert upload_hash not in client.get(page, headers=heads["bob"]).text, page
    assert client.get(f"/dashboard/models/{upload_hash}", headers=heads["bob"]).status_code == 404

    measured_by_bob = client.post(
        "/profile",
        json={"artifact": key, "devices": [DeviceClass.of_this_cpu().value]},
        headers=heads["bob"],
    )
    assert measured_by_bob.status_code == 404
    assert measured_by_bob.json()["field"] == "artifact"


def test_accuracy_figures_are_their_setters_and_follow_the_upload(team, tmp_path):
    client, heads = team
    key, _job_id = _measured_upload(client, heads, tmp_path)
    zoo = {"model": "mobileone_s0", "top1": 71.0, "source": "run 1"}
    with client.app.state.sessions() as session:
        _done_job(session, 1)  # stores the zoo spec the figure belongs to
    assert client.post("/accuracy", json=zoo, headers=heads["alice"]).status_code == 201
    replaced = client.post("/accuracy", json={**zoo, "top1": 10.0}, headers=heads["bob"])
    assert replaced.status_code == 409 and "alice" in replaced.json()["detail"]
    assert client.post("/accuracy", json=zoo, headers=heads["admin"]).status_code == 201
    private = {"spec_hash": key.split("-")[0], "top1": 60.0, "source": "mine"}
    assert client.post("/accuracy", json=private, headers=heads["bob"]).status_code == 404
    assert client.post("/accuracy", json=private, headers=heads["alice"]).status_code == 201

    def subjects(who: str) -> set[str]:
        return {a["subject"] for a in client.get("/accuracy", headers=heads[who]).json()["data"]}

    assert subjects("alice") == subjects("admin") == {private["spec_hash"], SPEC_HASH}
    assert subjects("bob") == {SPEC_HASH}


def test_a_revoked_or_unknown_token_is_refused(team):
    client, heads = team
    assert client.get("/jobs", headers=bearer("not-a-token-of-anyone-here")).status_code == 401
    assert client.get("/jobs", headers=heads["bob"]).status_code == 200
    with client.app.state.sessions() as session:
        session.get(UserRow, "bob").revoked_at = session.get(UserRow, "alice").created_at
        session.commit()
    assert client.get("/jobs", headers=heads["bob"]).status_code == 401


def test_the_upload_quota_is_per_user(team, settings, tmp_path):
    client, heads = team
    data = _onnx_model(tmp_path).read_bytes()
    settings.max_upload_bytes_per_user = len(data) - 1
    refused = client.post("/artifacts", content=data, headers={**OCTET, **heads["alice"]})
    assert refused.status_code == 429, refused.text
    assert "LATBENCH_MAX_UPLOAD_BYTES_PER_USER" in refused.json()["detail"]


def test_users_add_prints_a_token_once_and_stores_its_hash(settings, monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'users.db'}"
    monkeypatch.setenv("LATBENCH_DATABASE_URL", url)
    from service.settings import get_settings

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        added = runner.invoke(cli, ["users", "add", "carol", "--admin"])
        assert added.exit_code == 0, added.output
        token = added.stdout.strip().splitlines()[0]
        listed = runner.invoke(cli, ["users", "list"])
        assert "carol\tadmin" in listed.stdout and token not in listed.stdout
        assert runner.invoke(cli, ["users", "add", "admin"]).exit_code == 2  # reserved
        assert runner.invoke(cli, ["users", "revoke", "carol"]).exit_code == 0
        assert "revoked" in runner.invoke(cli, ["users", "list"]).stdout
    finally:
        get_settings.cache_clear()
    from service.db.engine import make_engine, make_sessionmaker

    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        row = session.get(UserRow, "carol")
        assert row.token_hash == token_digest(token) and token not in row.token_hash
    engine.dispose()


def test_a_job_listing_counts_what_its_pages_hold(team, tmp_path):
    """Alice compares a zoo model (the job's first spec) against her upload: bob may not see the
    job, and his count leaves it out as his pages do (the count once checked the first spec only,
    so it ran one over and the pages came back short of it)."""
    client, heads = team
    key, private_job = _measured_upload(client, heads, tmp_path)
    device = DeviceClass.of_this_cpu().value
    compared = client.post(
        "/compare",
        json={"baseline": "mobileone_s0", "candidate": {"artifact": key}, "devices": [device]},
        headers=heads["alice"],
    )
    assert compared.status_code == 202, compared.text
    compare_job = compared.json()["jobs"][0]["id"]
    with client.app.state.sessions() as session:
        zoo_jobs = {_done_job(session, n) for n in (1, 2, 3)}

    def pages(who: str) -> tuple[set[int], list[str]]:
        """Every page of two: the counts they state, the ids they hold."""
        counts, ids, offset = set(), [], 0
        while True:
            page = client.get(f"/jobs?limit=2&offset={offset}", headers=heads[who]).json()
            counts.add(page["count"])
            ids += [j["id"] for j in page["data"]]
            if len(page["data"]) < 2:
                return counts, ids
            offset += 2

    bob_counts, bob_ids = pages("bob")
    assert set(bob_ids) == zoo_jobs
    assert bob_counts == {len(bob_ids)} == {3}
    alice_counts, alice_ids = pages("alice")
    assert set(alice_ids) == zoo_jobs | {private_job, compare_job}
    assert alice_counts == {len(alice_ids)} == {5}


def test_a_polled_read_costs_one_statement_after_the_callers_token(team, tmp_path):
    """GET /jobs/{id} and GET /results, as a user and as the admin: the user's token lookup, then
    one statement holding the rows, the caller's right to see them and their runner's revocation
    (a user's job view cost four statements after the token, the admin's two)."""
    client, heads = team
    _, job_id = _measured_upload(client, heads, tmp_path)
    engine = client.app.state.sessions.kw["bind"]
    for who, token_lookups in (("admin", 0), ("alice", 1)):
        for path in (f"/jobs/{job_id}", "/results"):
            with counted(engine) as sent:
                answer = client.get(path, headers=heads[who])
            assert answer.status_code == 200, answer.text
            assert len(sent) == token_lookups + 1, (who, path, sent)
