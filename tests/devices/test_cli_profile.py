"""`latbench profile --json` end to end: real export (cached in a temporary store), real ORT."""

import json

import pytest
from typer.testing import CliRunner

from service.cli import app


@pytest.mark.slow
def test_profile_json_has_the_documented_fields(tmp_path, monkeypatch):
    """By default the runner is chosen by this CPU's device class, as the service chooses."""
    monkeypatch.setenv("LATBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LATBENCH_HOST_LOCK", str(tmp_path / "host.lock"))
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
    assert (tmp_path / "host.lock").exists()  # the export and the measurement took the host lock
    assert doc["stop_reason"] == "sustained" and doc["windows"][0]["median_ms"] > 0
    assert doc["profiler_overhead"]["plain_median_ms"] == doc["latency_ms"]["median"]
    assert doc["conditions"]["versions"]["onnxruntime"] == doc["device"]["runtime_version"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "nope"], "--device: unknown device class 'nope'"),
        (["--device", "cpu-x86"], "(did you mean 'cpu-x86_64'?)"),
        (["--runner", "nope"], "unknown runner 'nope'"),
        (["--device", "cpu-arm64", "--runner", "ort-cpu"], "measures cpu-x86_64, not cpu-arm64"),
    ],
)
def test_profile_refuses_a_bad_device_or_runner_before_exporting(
    tmp_path, monkeypatch, args, message
):
    monkeypatch.setenv("LATBENCH_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["profile", "mobilenetv3_small_050", *args])
    assert result.exit_code == 2 and message in result.output
    assert not any(tmp_path.iterdir())


def test_profile_on_a_device_class_without_a_runner_here_fails_before_exporting(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("LATBENCH_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(
        app, ["profile", "mobilenetv3_small_050", "--device", "iphone12-class"]
    )
    assert result.exit_code == 2 and "cannot run on this host" in result.output
    assert "latbench predict MODEL --device iphone12-class" in result.output
    assert not any(tmp_path.iterdir())
