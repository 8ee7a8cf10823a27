"""POST /artifacts over HTTP: a valid ONNX file is stored once under its content hash and can be
profiled by id; hostile uploads get a clear 4xx naming the field and leave nothing stored."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from exporters.errors import SpecError
from service.app import create_app
from service.db.tables import ArtifactRow, SpecRow
from tests.exporters.test_sources import _onnx_model
from tests.service.doubles import OCTET


@pytest.fixture
def client(settings):
    settings.max_artifact_bytes = 4096
    with TestClient(create_app(settings)) as c:
        yield c


def stored(settings) -> list:
    return [p for p in (settings.data_dir / "artifacts").glob("*")] + [
        p for p in (settings.data_dir / "tmp").glob("*")
    ]


def test_upload_is_validated_stored_once_and_recorded(client, settings, tmp_path):
    data = _onnx_model(tmp_path).read_bytes()
    first = client.post("/artifacts", content=data, params={"name": "addnet"}, headers=OCTET)
    again = client.post("/artifacts", content=data, params={"name": "addnet"}, headers=OCTET)
    assert first.status_code == 201, first.text
    doc = first.json()
    assert (
        doc["format"] == "onnx"
        and doc["reparam"]["note"] == "reparam: not applicable, uploaded artifact"
    )
    assert again.status_code == 200 and again.json()["id"] == doc["id"] and again.json()["cached"]
    assert len(list((settings.data_dir / "artifacts").glob("*"))) == 1
    with client.app.state.sessions() as session:
        row = session.get(ArtifactRow, doc["id"])
        assert row is not None and session.get(SpecRow, row.spec_hash).family == "uploaded"


@pytest.mark.parametrize(
    "make, status, detail",
    [
        (lambda p: b"definitely not onnx", 422, "not an ONNX model"),
        (lambda p: _onnx_model(p).read_bytes()[:-9], 422, "ONNX"),
        (lambda p: _onnx_model(p, external=True).read_bytes(), 422, "external data"),
        (lambda p: b"\0" * 40960, 413, "4096 bytes"),  # 10x the limit
        (lambda p: b"", 422, "empty body"),
    ],
)
def test_hostile_uploads_are_4xx_and_leave_nothing(
    client, settings, tmp_path, make, status, detail
):
    response = client.post("/artifacts", content=make(tmp_path), headers=OCTET)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]
    assert stored(settings) == []
    with client.app.state.sessions() as session:
        assert session.query(ArtifactRow).count() == 0


def test_chunked_upload_past_the_limit_is_cut_off(client, settings):
    chunks = (b"\0" * 1024 for _ in range(40))  # no Content-Length: counted while streaming
    response = client.post("/artifacts", content=chunks, headers=OCTET)
    assert response.status_code == 413
    assert stored(settings) == []


@pytest.mark.parametrize(
    "payload",
    [
        {"model": "python:os:system"},
        {"model": {"model": "python:usernets.nets:build", "kwargs": {}}},
    ],
)
def test_python_source_sent_to_the_api_is_refused_naming_the_field(client, payload):
    response = client.post("/profile", json={**payload, "formats": ["onnx"]})
    assert response.status_code == 422
    assert response.json()["field"] == "model"
    assert "only the CLI" in response.json()["detail"]


def test_profile_request_takes_an_artifact_id_instead_of_a_model():
    from service.api.schemas import ProfileCreate

    key = "0" * 32 + "-onnx-fp32"
    assert ProfileCreate.model_validate({"artifact": key}).artifact == key
    for bad in ({}, {"artifact": key, "model": "mobileone_s0"}, {"artifact": "../etc"}):
        with pytest.raises(ValueError):
            ProfileCreate.model_validate(bad)


def test_cli_upload_sends_a_built_artifact_and_relays_refusals(client, tmp_path):
    from exporters.artifacts import ArtifactStore
    from exporters.formats import ExportFormat
    from exporters.sources import materialize
    from service.remote import upload_artifact

    store = ArtifactStore(tmp_path / "local")
    done = materialize(str(_onnx_model(tmp_path)), store=store, fmt=ExportFormat.ONNX)
    uploaded = upload_artifact(client, done.artifact, name="addnet", token=None)
    assert uploaded["id"] == done.artifact.key  # the same bytes: the same id on both sides
    done.artifact.path.write_bytes(b"tampered")
    with pytest.raises(SpecError) as info:
        upload_artifact(client, done.artifact, name="addnet", token=None)
    assert info.value.field == "artifact"


def test_profile_by_artifact_id_is_created_exported_and_sent_to_the_device_queue(
    settings, tmp_path
):
    from exporters.formats import DeviceClass
    from service.jobs import steps
    from service.jobs.transitions import Event, move
    from tests.service.doubles import RecordingDispatcher

    app = create_app(settings, dispatcher=RecordingDispatcher())
    with TestClient(app) as http:
        key = http.post(
            "/artifacts", content=_onnx_model(tmp_path).read_bytes(), headers=OCTET
        ).json()["id"]
        body = {"artifact": key, "devices": [DeviceClass.CPU_X86_64.value]}
        first = http.post("/profile", json=body)
        assert first.status_code == 202, first.text
        assert first.json()["weights"] == "as uploaded"  # the upload's own, never "random"
        job_id = first.json()["jobs"][0]["id"]
        assert http.post("/profile", json=body).json()["jobs"][0]["id"] == job_id  # coalesced
        dispatcher = app.state.dispatcher
        assert dispatcher.submitted == []  # never through the export queue
        assert [(t.job_id, t.artifact_key) for t in dispatcher.dispatched] == [(job_id, key)]
        with app.state.sessions() as session:  # interrupted: queued again without its artifact
            assert move(session, Event.CLAIM, job_id=job_id, attempt=1)
            assert move(session, Event.REQUEUE, job_id=job_id, attempt=1)
        task = steps.export_step(
            app.state.sessions, job_id=job_id, attempt=2, store_root=settings.data_dir,
            lock_path=settings.host_lock, workers=steps.export_workers(settings),
            beat_s=settings.heartbeat_interval_s,
        )  # fmt: skip
        assert task is not None and task.artifact_key == key  # found, not built

        unknown = http.post("/profile", json={**body, "artifact": "f" * 32 + "-onnx-fp32"})
        assert (unknown.status_code, unknown.json()["field"]) == (404, "artifact")
        iphone = http.post("/profile", json={**body, "devices": ["iphone12-class"]})
        assert (iphone.status_code, iphone.json()["field"]) == (422, "devices")
        assert "is onnx" in iphone.json()["detail"]
        assert len(dispatcher.dispatched) == 1


def test_record_upload_is_idempotent_on_both_databases(sessions):
    from exporters.errors import NotFoundError
    from service.db.artifacts import record_upload, uploaded

    key = "a" * 32 + "-onnx-fp32"
    for _ in range(2):
        with sessions() as session:
            record_upload(session, key=key, label="addnet", path="/x", meta={"size_bytes": 1})
    with sessions() as session:
        assert uploaded(session, key=key).format == "onnx"
        assert session.query(ArtifactRow).count() == 1 and session.query(SpecRow).count() == 1
        with pytest.raises(NotFoundError):
            uploaded(session, key="b" * 32 + "-onnx-fp32")
