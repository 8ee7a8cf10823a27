"""POST /calibrations: .npy bytes stored by content id, never unpickled; errors name the field."""

from __future__ import annotations

import io
import pickle

import numpy as np
from fastapi.testclient import TestClient

from exporters.calibration import CalibrationStore
from tests.service.test_api import make_app


def npy(array: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **options)
    return buffer.getvalue()


def test_upload_is_stored_by_content_and_refuses_pickles(settings):
    samples = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with TestClient(make_app(settings)) as client:
        first = client.post("/calibrations", content=npy(samples))
        again = client.post("/calibrations", content=npy(samples))
        objects = client.post(
            "/calibrations", content=npy(np.array([{}], dtype=object), allow_pickle=True)
        )
        pickled = client.post("/calibrations", content=pickle.dumps(samples))
        flat = client.post("/calibrations", content=npy(np.zeros((3, 16), np.float32)))
    assert first.status_code == 201, first.text
    assert first.json() == {**again.json(), "samples": 3, "shape": [3, 3, 16, 16]}
    stored = CalibrationStore(settings.data_dir).get(first.json()["id"])
    assert np.array_equal(stored, samples)
    for refused in (objects, pickled, flat):
        assert (refused.status_code, refused.json()["field"]) == (422, "calibration")
