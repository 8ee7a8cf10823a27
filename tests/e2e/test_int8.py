"""int8 through the service: `latbench serve` exports the quantized deploy form (its own
artifact key), the embedded runner measures it, and the result carries the quantization
statement and the CPU's int8 capability; a user's calibration set is uploaded, never a path."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.e2e.conftest import FAST, SMALL, Server
from tests.e2e.test_embedded import server  # noqa: F401 - one embedded server per module

pytestmark = pytest.mark.slow


def profile(on: Server, spec: dict) -> dict:
    accepted = on.http.post(
        "/profile", json={"model": {**SMALL, **spec, "formats": ["onnx"]}, "settings": FAST}
    )
    assert accepted.status_code == 202, accepted.text
    return accepted.json()["jobs"][0]


def test_int8_profile_is_measured_and_cached_under_its_own_key(server):  # noqa: F811
    fp32 = server.wait_job(profile(server, {})["id"])
    brief = profile(server, {"precision": "int8"})
    job = server.wait_job(brief["id"])
    assert job["state"] == "done", job["error"]
    result = job["result"]
    assert result["artifact"]["precision"] == "int8"
    assert result["artifact"]["key"].endswith("-onnx-int8")
    assert result["artifact"]["key"] != fp32["result"]["artifact"]["key"]
    stated = result["quantization"]
    assert stated["calibration"] == "synthetic" and stated["samples"] > 0
    assert 0 < stated["int8_mac_fraction"] <= 1 and stated["sqnr_db"] is not None
    assert "dot_product" in result["conditions"]["int8_capability"]
    repeat = profile(server, {"precision": "int8"})
    assert repeat == {**repeat, "id": brief["id"], "state": "done", "cached": True}


def test_uploaded_calibration_set_is_recorded(server):  # noqa: F811
    samples = np.random.default_rng(3).standard_normal((6, 3, 64, 64)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, samples, allow_pickle=False)
    uploaded = server.http.post("/calibrations", content=buffer.getvalue())
    assert uploaded.status_code == 201, uploaded.text
    set_id = uploaded.json()["id"]
    job = server.wait_job(profile(server, {"precision": "int8", "calibration": set_id})["id"])
    assert job["state"] == "done", job["error"]
    stated = job["result"]["quantization"]
    assert (stated["calibration"], stated["samples"], stated["set"]) == ("user", 5, set_id)
    wrong = np.zeros((4, 3, 32, 32), np.float32)
    buffer = io.BytesIO()
    np.save(buffer, wrong, allow_pickle=False)
    small_id = server.http.post("/calibrations", content=buffer.getvalue()).json()["id"]
    failed = server.wait_job(profile(server, {"precision": "int8", "calibration": small_id})["id"])
    assert failed["state"] == "failed" and "calibration" in failed["error"]
