"""`latbench profile --json` end to end: real export (cached in a temporary store), real ORT."""

import json

import pytest
from typer.testing import CliRunner

from service.cli import app


@pytest.mark.slow
def test_profile_json_has_the_documented_fields(tmp_path, monkeypatch):
    monkeypatch.setenv("LATBENCH_DATA_DIR", str(tmp_path))
    args = ["profile", "mobilenetv3_small_050", "--threads", "1", "--max-seconds", "2", "--json",
            "--layers", "--sustained", "2"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"] == "mobilenetv3_small_050" and len(doc["spec_hash"]) == 32
    assert {"median", "mean", "min", "p90", "p99", "std", "cv", "ci95", "n"} <= set(
        doc["latency_ms"]
    )
    assert doc["device"]["runner"] == "ort-cpu" and doc["device"]["threads"] == 1
    assert doc["load_ms"] > 0 and isinstance(doc["target_met"], bool)
    assert doc["weights"] == "random" and doc["format"] == "onnx"
    assert doc["stop_reason"] == "sustained" and doc["windows"][0]["median_ms"] > 0
    assert doc["profiler_overhead"]["plain_median_ms"] == doc["latency_ms"]["median"]
    assert doc["conditions"]["versions"]["onnxruntime"] == doc["device"]["runtime_version"]


def test_profile_refuses_an_unavailable_device_before_exporting(tmp_path, monkeypatch):
    monkeypatch.setenv("LATBENCH_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["profile", "mobilenetv3_small_050", "--device", "nope"])
    assert result.exit_code == 2 and "unknown runner 'nope'" in result.output
    assert not any(tmp_path.iterdir())
