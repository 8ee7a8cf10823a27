"""Hostile input is a 4xx naming the field, never a 500 and never a stored row that breaks later
answers: integers and dates out of range, NUL and lone surrogates in path, query and body (on
SQLite and PostgreSQL), runner descriptions too deep or too big, and specs whose request-only
fields would leak into another request's job."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from exporters.spec import parse_spec
from service.app import create_app
from service.db.tables import SpecRow
from service.dispatch.local import LocalDispatcher


@pytest.fixture
def app(settings, db_url, monkeypatch):
    settings.database_url = db_url
    settings.local_runner = True  # this CPU's jobs are accepted, but the worker never starts
    monkeypatch.setattr(LocalDispatcher, "start", lambda self: None)
    return create_app(settings)


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def raw_post(client, path: str, text: str, **headers):
    return client.post(
        path, content=text.encode(), headers={"content-type": "application/json", **headers}
    )


def runner(client) -> tuple[str, dict[str, str]]:
    made = client.post("/runners", json={"device_class": "cpu-x86_64"}).json()
    return made["id"], {"authorization": f"Bearer {made['token']}"}


@pytest.mark.parametrize(
    "path, field",
    [
        ("/jobs?offset=9223372036854775808", "offset"),
        ("/models?offset=9223372036854775808", "offset"),
        ("/results?since=0001-01-01T00:00:00%2B01:00", "since"),
        ("/results?model=%00", "query.model"),
        ("/jobs?model=a%00b", "query.model"),
        ("/jobs/%00", "path"),
    ],
)
def test_out_of_range_or_unstorable_query_is_a_422(client, path, field):
    answer = client.get(path)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"].endswith(field)


def test_claim_with_a_huge_attempt_is_a_422(client):
    runner_id, auth = runner(client)
    answer = client.post(
        f"/runners/{runner_id}/claim", json={"job_id": "x", "attempt": 2**63}, headers=auth
    )
    assert answer.status_code == 422 and answer.json()["field"] == "attempt"


@pytest.mark.parametrize(
    "text, field",
    [
        ('{"model": {"model": "fastvit_t8", "overrides": {"\\ud800x": 1}}}', "model.overrides"),
        ('{"model": "fastvit\\u0000_t8"}', "model"),
        ('{"model": "\\udfff"}', "model"),
        ("[" * 30000 + "]" * 30000, "body"),
    ],
)
def test_unstorable_text_in_a_body_is_a_422(client, text, field):
    answer = raw_post(client, "/profile", text)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert client.get("/jobs").json()["count"] == 0


def test_a_valid_surrogate_pair_passes(client):
    answer = raw_post(client, "/profile", '{"model": "\\ud83d\\ude00"}')
    assert answer.status_code == 422 and answer.json()["field"] == "model"  # no such model


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "description, text",
    [
        (None, '{"device_class": "cpu-x86_64", "description": {"cpu": "\\ud800"}}'),
        (nested(300), None),
        ({"blob": "x" * 20000}, None),
    ],
)
def test_a_runner_description_that_would_break_listings_is_refused(client, description, text):
    if text is None:
        answer = client.post(
            "/runners", json={"device_class": "cpu-x86_64", "description": description}
        )
    else:
        answer = raw_post(client, "/runners", text)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"].startswith("description")
    assert client.get("/devices").status_code == 200
    assert client.get("/results").status_code == 200


def test_a_request_for_fp16_onnx_changes_nobody_elses_spec(app, client):
    """The issue's case: precision outside what ONNX exports, then a plain request for the same
    graph. The plain request's stored spec must be exactly its own."""
    client.post(
        "/profile",
        json={"model": {"model": "mobileone_s0", "precision": "fp16"}, "formats": ["onnx"]},
    )
    plain = client.post("/profile", json={"model": "mobileone_s0", "formats": ["onnx"]})
    assert plain.status_code == 202, plain.text
    with app.state.sessions() as session:
        stored = session.get(SpecRow, plain.json()["spec_hash"]).body
    assert stored == parse_spec("mobileone_s0").identity()


def test_a_precision_the_format_cannot_take_is_a_422(client):
    answer = client.post(
        "/profile",
        json={"model": {"model": "mobileone_s0", "precision": "fp16"}, "formats": ["onnx"]},
    )
    assert answer.status_code == 422 and answer.json()["field"] == "precision"


def test_a_spec_over_the_work_budget_is_a_422(client):
    huge = {
        "model": "fastvit_t8",
        "overrides": {"layers": [32] * 4, "embed_dims": [2048] * 4, "mlp_ratios": [8] * 4},
    }
    answer = client.post("/profile", json={"model": huge, "formats": ["onnx"]})
    assert answer.status_code == 422 and "max_params" in answer.json()["detail"]
