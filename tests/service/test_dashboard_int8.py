"""Quantized points on the dashboard: a synthetic-calibrated int8 result is latency only (listed
apart, never on an accuracy front), a user-calibrated one is plotted as its own point, marked
by precision, and the precision filter selects points."""

from __future__ import annotations

from service.dashboard.view import SYNTHETIC
from tests.service.test_dashboard import client, points_of, store_result  # noqa: F401

INT8 = {"scheme": "onnx QDQ", "samples": 16, "int8_mac_fraction": 1.0, "sqnr_db": 30.0}
CPU = "cpu-x86_64"


def test_synthetic_calibrated_point_is_never_on_an_accuracy_front(client):  # noqa: F811
    app = client.app
    store_result(app, {"model": "mobileone_s0"}, CPU, 3.0)
    synthetic = {"model": "mobileone_s0", "precision": "int8"}
    synthetic_hash = store_result(
        app, synthetic, CPU, 1.0, quantization={**INT8, "calibration": "synthetic"}
    )
    user = {"model": "mobileone_s1", "precision": "int8", "calibration": "a" * 32}
    store_result(app, user, CPU, 2.0, quantization={**INT8, "calibration": "user"})

    data = client.get("/dashboard/data.json", params={"device": CPU}).json()
    cpu = points_of(data, CPU)
    assert set(cpu) == {"mobileone_s0", "mobileone_s1 (int8)"}
    assert all(p["spec_hash"] != synthetic_hash for p in data["points"])
    [apart] = data["unplotted"]
    assert (apart["spec_hash"], apart["precision"], apart["reason"]) == (
        synthetic_hash,
        "int8",
        SYNTHETIC,
    )
    quantized = cpu["mobileone_s1 (int8)"]
    assert (quantized["precision"], quantized["calibration"]) == ("int8", "user")
    front = {p["key"]: p["label"] for p in data["points"]}
    assert [front[k] for k in data["frontier"][CPU]] == ["mobileone_s1 (int8)"]
    assert data["precisions"] == ["fp32", "int8"]

    fp32 = client.get("/dashboard/data.json", params={"device": CPU, "precision": "fp32"}).json()
    assert set(points_of(fp32, CPU)) == {"mobileone_s0"}
    page = client.get("/dashboard")
    assert 'name="precision" value="int8"' in page.text
