"""The ``predicted`` result kind through the service: POST /profile for a class with a predictor
and no runner registered makes a ``predict`` job, which the server runs in its export step (real
export, real predictor); the prediction is stored apart from measurements (GET /results lists
it only by ``kind=predicted``), served by GET /jobs/{id} with its predictor, interval, CV error
and domain, drawn by the dashboard, listed by GET /devices, refused by the gate's check unless
allowed, and never answers a later measurement request."""

from __future__ import annotations

import time

import onnx
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto, helper

from exporters.artifacts import ArtifactStore, artifact_key
from exporters.errors import SpecError
from exporters.formats import ExportFormat
from exporters.spec import parse_spec
from service.app import create_app
from service.db import runners
from service.dispatch.local import LocalDispatcher
from service.jobs import steps
from service.predict.policy import is_prediction, require_measured
from service.predict.shipped import load_predictor
from tests.service.doubles import RecordingDispatcher

IPHONE = "iphone12-class"
REF = (
    "model,family,timm_name,resolution,top1,device,latency_ms,source_repo,source_file_or_table\n"
    "MobileOne-S0,MobileOne,mobileone_s0,224,71.4,iPhone 12,0.79,apple/ml-mobileone,README\n"
)
SMALL = {"model": "mobileone_s0", "input": {"height": 64, "width": 64}}


@pytest.fixture
def client(settings, tmp_path):
    """Runners attach through the queue (celery setting) and none is online yet."""
    settings.dispatcher = "celery"
    settings.reference_csv = tmp_path / "ref.csv"
    settings.reference_csv.write_text(REF)
    app = create_app(settings, dispatcher=RecordingDispatcher())
    with TestClient(app) as c:
        yield c


def profile(client, model, **extra):
    response = client.post("/profile", json={"model": model, "devices": [IPHONE], **extra})
    assert response.status_code == 202, response.text
    return response.json()["jobs"][0]


def run_export_step(client, job_id: str, *, to_runner: bool = False) -> None:
    """What the export worker does with the job the dispatcher was handed: a predict job is
    answered on the server, a profile job (``to_runner``) is passed on to a runner's queue."""
    settings = client.app.state.settings
    workers = steps.export_workers(settings)
    try:
        task = steps.export_step(
            client.app.state.sessions,
            job_id=job_id,
            attempt=1,
            store_root=settings.data_dir,
            lock_path=settings.host_lock,
            workers=workers,
            beat_s=settings.heartbeat_interval_s,
        )
    finally:
        workers.stop()
    assert (task is not None) == to_runner  # a prediction runs on the server: no runner's queue


def put_artifact(settings, model, write) -> None:
    """The spec's ONNX artifact, already in the store (the export step finds it cached)."""
    spec = parse_spec(model)
    onnx_precision = spec.precision_for(ExportFormat.ONNX)
    key = artifact_key(spec.content_hash(), ExportFormat.ONNX, onnx_precision)

    def produce(path) -> dict:
        write(path)
        return {}

    ArtifactStore(settings.data_dir).put(key, produce)


def einsum_graph(path) -> None:
    """A graph holding an op no training graph has."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 16])
    node = helper.make_node("Einsum", ["x"], ["y"], equation="bij->bji")
    graph = helper.make_graph([node], "einsum", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


def put_einsum_artifact(settings, model) -> None:
    put_artifact(settings, model, einsum_graph)


def test_a_predict_job_whose_worker_stopped_after_its_export_is_answered_when_sent_again(
    client, monkeypatch
):
    """The worker that exported a predict job may stop before it runs the prediction: the job
    waits exported (queued, its artifact stored). Recovery or the reaper's re-send hands the
    export step the same message again, which runs the prediction then, instead of leaving the
    job for a runner that never comes until the queue age fails it."""
    brief = profile(client, "mobileone_s0")
    with monkeypatch.context() as stopped:
        stopped.setattr(steps, "_run_on_server", lambda *args: None)  # stopped right there
        run_export_step(client, brief["id"])
    job = client.get(f"/jobs/{brief['id']}").json()
    assert (job["state"], job["attempt"], job["result"]) == ("queued", 1, None)
    run_export_step(client, brief["id"])  # the message again: no export, the prediction runs
    job = client.get(f"/jobs/{brief['id']}").json()
    assert (job["state"], job["error"]) == ("done", None)
    assert job["result"]["kind"] == "predicted"
    run_export_step(client, brief["id"])  # once more: nothing left to do, nothing stored twice
    predicted = client.get("/results", params={"kind": "predicted"}).json()
    assert [r["job_id"] for r in predicted["data"]] == [brief["id"]]


def test_the_embedded_worker_answers_a_predict_job_its_last_start_left_exported(
    client, monkeypatch
):
    """The same, on the embedded dispatcher: its worker takes queued jobs from the database and
    takes an exported predict job too, though it is of no runner's class here."""
    brief = profile(client, "mobileone_s0")
    with monkeypatch.context() as stopped:
        stopped.setattr(steps, "_run_on_server", lambda *args: None)
        run_export_step(client, brief["id"])
    settings = client.app.state.settings.model_copy(update={"local_runner": True})
    worker = LocalDispatcher(settings, client.app.state.sessions)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while (job := client.get(f"/jobs/{brief['id']}").json())["state"] == "queued":
            assert time.monotonic() < deadline, "the embedded worker left the job queued"
            time.sleep(0.2)
    finally:
        worker.stop()
    assert (job["state"], job["error"], job["result"]["kind"]) == ("done", None, "predicted")


def test_a_class_without_runner_is_predicted_end_to_end(client):
    brief = profile(client, "mobileone_s0")
    assert (brief["kind"], brief["device"], brief["state"]) == ("predict", IPHONE, "queued")
    assert client.app.state.dispatcher.submitted == [(brief["id"], 1)]
    run_export_step(client, brief["id"])  # a real export of the model to ONNX, then predicted

    job = client.get(f"/jobs/{brief['id']}").json()
    assert (job["kind"], job["state"], job["error"]) == ("predict", "done", None)
    result = job["result"]
    assert result["kind"] == "predicted" and is_prediction(result)
    low, high = result["latency_ms"]["interval"]
    assert 0 < low < result["latency_ms"]["median"] < high
    predictor = result["predictor"]
    assert predictor["version"] and predictor["training_rows"] >= 10
    # the shipped predictor's own nested-CV figures (test_predict_quality holds them to the docs)
    shipped = load_predictor(IPHONE, client.app.state.settings.data_dir).info().cv
    assert predictor["cv"]["median_ape_pct"] == pytest.approx(shipped.median_ape_pct)
    assert predictor["cv"]["spearman"] == pytest.approx(shipped.spearman)
    assert result["domain"]["family_seen"] and result["domain"]["family"] == "mobileone"
    assert result["runner_id"] is None and result["artifact"]["format"] == "onnx"

    assert client.get("/results").json()["count"] == 0  # measurements only, by default
    predicted = client.get("/results", params={"kind": "predicted"}).json()
    assert [r["job_id"] for r in predicted["data"]] == [brief["id"]]
    assert predicted["data"][0]["kind"] == "predicted"

    data = client.get("/dashboard/data.json").json()
    [point] = [p for p in data["points"] if p["device"] == IPHONE and p["kind"] != "published"]
    assert point["kind"] == "predicted" and point["model"] == "mobileone_s0"
    assert (point["latency_low"], point["latency_high"]) == pytest.approx((low, high))

    with pytest.raises(SpecError, match="is a prediction, not a measurement"):
        require_measured(result)  # what the gate calls on each result it would gate on
    require_measured(result, allow_predicted=True)


def test_an_op_type_never_seen_abstains_unless_allowed(client):
    put_einsum_artifact(client.app.state.settings, SMALL)
    brief = profile(client, SMALL)
    run_export_step(client, brief["id"])  # abstains: the job fails saying why
    job = client.get(f"/jobs/{brief['id']}").json()
    assert job["state"] == "failed" and job["result"] is None
    assert "Einsum" in job["error"] and "family 'mobileone'" in job["error"]
    assert f"attach a runner of {IPHONE}" in job["error"] and "allow_out_of_domain" in job["error"]
    assert client.get("/results", params={"kind": "predicted"}).json()["count"] == 0

    allowed = profile(client, SMALL, allow_out_of_domain=True)
    run_export_step(client, allowed["id"])
    [stored] = client.get("/results", params={"kind": "predicted"}).json()["data"]
    assert stored["job_id"] == allowed["id"]
    domain = stored["domain"]
    assert not domain["inside"] and domain["unseen_op_types"] == ["Einsum"]
    assert "Einsum" in domain["note"]
    assert any("outside the training domain" in note for note in stored["notes"])
    data = client.get("/dashboard/data.json").json()  # listed as "no prediction", not drawn
    assert not [p for p in data["points"] if p["kind"] == "predicted"]
    [listed] = data["no_prediction"]
    assert (listed["model"], listed["device"]) == ("mobileone_s0", IPHONE)
    assert "Einsum" in listed["reason"]


def test_a_prediction_allowed_outside_the_domain_does_not_answer_a_request_without_the_flag(
    client,
):
    """The flag is part of the request's identity: a done out-of-domain answer given because it
    was asked for is reused only by a request that asks for it too; one without the flag gets
    its own job, which abstains."""
    put_einsum_artifact(client.app.state.settings, SMALL)
    allowed = profile(client, SMALL, allow_out_of_domain=True)
    run_export_step(client, allowed["id"])
    assert client.get(f"/jobs/{allowed['id']}").json()["state"] == "done"
    assert profile(client, SMALL, allow_out_of_domain=True)["id"] == allowed["id"]

    plain = profile(client, SMALL)
    assert plain["id"] != allowed["id"] and not plain["cached"]
    run_export_step(client, plain["id"])
    job = client.get(f"/jobs/{plain['id']}").json()
    assert job["state"] == "failed" and "Einsum" in job["error"]
    [stored] = client.get("/results", params={"kind": "predicted"}).json()["data"]
    assert stored["job_id"] == allowed["id"]  # the abstention stored nothing


def test_a_class_with_a_registered_offline_runner_queues_instead_of_predicting(client):
    with client.app.state.sessions() as s:
        runners.register_runner(s, device_class=IPHONE, description={}, runner_id="phone")
        [row] = runners.list_runners(s)
        row.online = False  # registered, not online
        s.commit()
    queued = profile(client, SMALL)
    assert (queued["kind"], queued["state"]) == ("profile", "queued")
    asked = profile(client, SMALL, predict=True)  # the user asks for a prediction
    assert asked["kind"] == "predict"
    upload = {"artifact": "0" * 32 + "-onnx-fp32", "devices": [IPHONE], "predict": True}
    refused = client.post("/profile", json=upload)  # an upload is measured as given
    assert refused.status_code == 422 and "predict" in refused.text, refused.text


def test_a_measurement_request_with_a_runner_online_is_measured_not_answered_by_the_prediction(
    client,
):
    put_einsum_artifact(client.app.state.settings, SMALL)
    predicted = profile(client, SMALL, allow_out_of_domain=True)
    run_export_step(client, predicted["id"])
    again = profile(client, SMALL, allow_out_of_domain=True)
    assert again["id"] == predicted["id"]  # a repeat reuses the prediction
    with client.app.state.sessions() as s:
        runners.register_runner(s, device_class=IPHONE, description={}, runner_id="phone")

    measured = profile(client, SMALL)
    assert (measured["kind"], measured["state"], measured["cached"]) == ("profile", "queued", False)
    assert measured["id"] != predicted["id"]
    run_export_step(client, measured["id"], to_runner=True)
    with client.app.state.sessions() as s:
        steps.claim(s, job_id=measured["id"], attempt=1, runner_id="phone")
        steps.complete(
            s,
            job_id=measured["id"],
            attempt=1,
            runner_id="phone",
            result={"latency_ms": {"median": 2.0}},
        )
    [result] = client.get("/results").json()["data"]
    assert result["kind"] == "measured" and result["job_id"] == measured["id"]
    require_measured(result)  # a measurement passes the gate's check
    [prediction] = client.get("/results", params={"kind": "predicted"}).json()["data"]
    assert prediction["job_id"] == predicted["id"]


def test_a_prediction_that_cannot_be_made_fails_its_job_and_stores_nothing(client):
    put_artifact(client.app.state.settings, SMALL, lambda path: path.write_bytes(b"not onnx"))
    brief = profile(client, SMALL)
    with pytest.raises(Exception):  # noqa: B017 (the worker logs what it raises)
        run_export_step(client, brief["id"])
    job = client.get(f"/jobs/{brief['id']}").json()
    assert job["state"] == "failed" and job["error"].startswith("internal error: ")
    assert job["result"] is None
    assert client.get("/results", params={"kind": "predicted"}).json()["count"] == 0


def test_devices_lists_predictors_as_virtual_devices(client):
    devices = client.get("/devices").json()
    by_class = {p["device_class"]: p for p in devices["predictors"]}
    phone = by_class[IPHONE]
    assert phone["virtual"] and not phone["online_runner"]
    assert phone["training_rows"] >= 10 and len(phone["families"]) >= 2
    assert phone["cv"]["median_ape_pct"] > 0 and "leave-one-family-out" in phone["cv"]["scheme"]
    assert phone["cv"]["coverage_inside"] > 0 and phone["cv"]["interval_level"] == 0.8
    assert by_class["cpu-arm64"]["method"].startswith("baseline ∝ macs")  # the predictor lost
    assert "predictor loses to macs" in by_class["cpu-arm64"]["offered_because"]
    assert devices["count"] == 0  # no runner registered
