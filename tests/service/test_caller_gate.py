"""The edge before any route: a loopback server answers only its own Host names (a page whose
domain is re-pointed at 127.0.0.1, DNS rebinding, gets a 422), and POST /artifacts takes only
``application/octet-stream`` (a browser's cross-site ``text/plain`` or a JSON body never reaches
a parser)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import is_loopback
from tests.service.doubles import RecordingDispatcher


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher.this_host())) as c:
        yield c


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1", "[::1]:8000", "testserver"])
def test_a_loopback_server_answers_its_own_names(client, host):
    assert client.get("/jobs", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example"])
def test_a_rebound_host_name_is_refused(client, host):
    response = client.get("/jobs", headers={"host": host})
    assert response.status_code == 422
    assert response.json()["field"] == "headers.host"


def test_the_host_names_the_gate_remembers_are_bounded(client):
    """The gate remembers each Host name it checked (it checks on every request): at most 256,
    and never one longer than DNS allows, which is refused without being kept."""
    is_loopback.cache_clear()
    response = client.get("/jobs", headers={"host": "1" * 10_000})
    assert response.status_code == 422
    assert response.json()["field"] == "headers.host"
    assert is_loopback.cache_info().currsize == 0
    for i in range(300):
        client.get("/jobs", headers={"host": f"10.0.{i // 256}.{i % 256}"})
    assert is_loopback.cache_info().currsize == 256


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json"])
def test_artifacts_take_octet_stream_only(client, settings, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/artifacts", content=b"[{}]", headers=headers)
    assert response.status_code == 422
    assert response.json()["field"] == "headers.content-type"
    assert not (settings.data_dir / "artifacts").exists()
