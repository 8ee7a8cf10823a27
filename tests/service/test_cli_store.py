"""`latbench profile` keeps its result in the data dir's database: `latbench report` and the
server's API on that data dir show it, labelled local, and no server request is answered by it."""

from __future__ import annotations

import json

import jsonschema_rs
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from devices.results import ComparisonRecord, MeasurementRecord
from service.api.schemas import ReparamPublic
from service.app import create_app
from service.cli import app
from service.cli.schema import schema_of
from service.settings import Settings


def test_a_local_profile_is_stored_listed_and_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("LATBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LATBENCH_HOST_LOCK", str(tmp_path / "host.lock"))
    monkeypatch.delenv("LATBENCH_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.yaml").write_text("model: mobileone_s0\ninput: {height: 64, width: 64}\n")
    args = ["profile", "small.yaml", "--threads", "1", "--max-seconds", "1", "--json"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["job_id"]
    args = ["compare", "small.yaml", "small.yaml", "--threads", "1", "--reloads", "2",
            "--blocks", "3", "--json"]  # fmt: skip
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.stderr
    compared = ComparisonRecord.model_validate(json.loads(done.stdout))
    compare_job = json.loads(done.stdout)["job_id"]
    # each --json against the JSON Schema `latbench schema KIND` publishes for its kind
    jsonschema_rs.validate(schema_of("compare"), json.loads(done.stdout))
    jsonschema_rs.validate(schema_of("profile"), doc)
    jsonschema_rs.validate(schema_of("reparam"), doc["reparam"])

    settings = Settings(_env_file=None, data_dir=tmp_path / "data", local_runner=False,
                        host_lock=tmp_path / "host.lock")  # fmt: skip
    with TestClient(create_app(settings)) as client:
        listed = client.get("/results", params={"model": "mobileone_s0"}).json()["data"]
        job = client.get(f"/jobs/{doc['job_id']}").json()
        stored_compare = client.get(f"/jobs/{compare_job}").json()
    (row,) = listed
    assert row["job_id"] == doc["job_id"] and row["spec_hash"] == doc["spec_hash"]
    # one shape per concept: the CLI's --json and the API's result agree key for key
    MeasurementRecord.model_validate(doc)
    ReparamPublic.model_validate(doc["reparam"])
    assert doc["reparam"]["ok"] is True and doc["reparam"]["rel_error"] < 1e-8
    for key in ("latency_ms", "reparam", "model", "format", "spec_hash", "weights", "host_load"):
        assert row[key] == doc[key], key
    assert any("measured locally" in note for note in row["notes"])
    assert job["state"] == "done" and job["kind"] == "profile"
    assert stored_compare["kind"] == "compare" and stored_compare["state"] == "done"
    assert stored_compare["result"]["ratio"] == compared.ratio

    out = tmp_path / "report.html"
    done = CliRunner().invoke(app, ["report", "--out", str(out)])
    assert done.exit_code == 0, done.stderr
    assert "mobileone_s0" in out.read_text()
    done = CliRunner().invoke(app, ["report", "--json"])
    assert done.exit_code == 0, done.stderr
    assert "mobileone_s0" in done.stdout and json.loads(done.stdout)["devices"]
