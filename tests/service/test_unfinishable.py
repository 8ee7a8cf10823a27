"""Settings that can never finish are refused at submission: a measurement that would sample
past the job timeout was failed by the reaper every time, after holding a runner that long."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.service.doubles import RecordingDispatcher


@pytest.mark.parametrize(
    "measure, field",
    [
        ({"sustained_seconds": 1200, "warmup_max_seconds": 60}, "settings.sustained_seconds"),
        ({"max_seconds": 1300}, "settings.max_seconds"),
    ],
)
def test_a_measurement_longer_than_the_job_timeout_is_refused(settings, measure, field):
    settings.job_timeout_s = 1250
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher())) as client:
        refused = client.post("/profile", json={"model": "mobileone_s0", "settings": measure})
        compared = client.post(
            "/compare",
            json={"baseline": "mobileone_s0", "candidate": "mobileone_s1", "settings": measure},
        )
        within = client.post(
            "/profile", json={"model": "mobileone_s0", "settings": {"sustained_seconds": 600}}
        )
        listed = client.get("/jobs").json()["count"]
    assert (refused.status_code, refused.json()["field"]) == (422, field)
    assert "LATBENCH_JOB_TIMEOUT_S" in refused.json()["detail"]
    assert compared.status_code == 422 and within.status_code == 202
    assert listed == len(within.json()["jobs"])
