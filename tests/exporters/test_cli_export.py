"""The `latbench export` / `latbench models` commands, run as a user runs them."""

import json
import os
import subprocess
import sys

import pytest


def latbench(*args: str, data_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "LATBENCH_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_export_json_document(tmp_path):  # no --format, no --device: ONNX alone
    result = latbench("export", "mobileone_s0", "--json", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["model"] == "mobileone_s0" and len(doc["spec_hash"]) == 32
    assert doc["params"] > 0 and doc["macs"] > 0
    assert doc["reparam"]["ok"] and doc["reparam"]["rel_error"] <= doc["reparam"]["tolerance"]
    (art,) = doc["artifacts"]
    assert art["format"] == "onnx" and art["ok"] and art["error"] is None
    assert art["parity"]["ok"] and art["export_seconds"] > 0
    assert os.path.isfile(art["path"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("export", "fastvit_t9"), "close matches: fastvit_t8"),
        (("export", "nope.yaml"), "does not exist"),
        (("export", "mobileone_s0", "--format", "tflite"), "--format"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, args, message):
    result = latbench(*args, data_dir=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_override_in_spec_file_names_the_field(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: fastvit_t8\noverrides: {pretrained: true}\n")
    result = latbench("export", str(spec), data_dir=tmp_path)
    assert result.returncode == 2 and "overrides.pretrained" in result.stderr


def test_models_lists_the_zoo(tmp_path):
    result = latbench("models", "repvit_m*", "--json", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    names = [row["name"] for row in json.loads(result.stdout)["data"]]
    assert "repvit_m0_9" in names and all(n.startswith("repvit_m") for n in names)
