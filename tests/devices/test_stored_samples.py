"""Every result fits the result body bound: a measurement keeps its statistics from all its
samples but stores at most ``MAX_STORED_SAMPLES`` of them, evenly spaced and deterministic (a
long ``--sustained`` run or a large ``max_iters`` once made a body over 64 KiB, refused with 413,
and the job hung to its timeout)."""

from __future__ import annotations

import json

from devices.results import MAX_STORED_SAMPLES, Measurement, stored_samples
from devices.stats import summarize

BODY_BOUND = 64 * 1024  # the server's LATBENCH_MAX_BODY_BYTES default


def _measurement(samples: list[float]) -> Measurement:
    return Measurement(
        runner="ort-cpu", artifact="model.onnx", latency_ms=summarize(samples),
        samples_ms=tuple(samples), cpu_ms=None, warmup_iters=5, warmup_steady=True, load_ms=3.0,
        peak_memory_mb=None, memory_source=None, target_met=True, stop_reason="max_iters",
        ci_halfwidth=0.01, device={"cpu_model": "test"}, settings={}, host_load={},
    )  # fmt: skip


def test_a_long_run_stores_a_bounded_deterministic_subset_and_every_statistic():
    samples = [4.0 + (i % 97) / 1000.0 + i * 1e-6 for i in range(20_000)]
    record = _measurement(samples).record()
    stored = record.samples_ms
    assert len(stored) == MAX_STORED_SAMPLES and record.latency_ms.n == 20_000
    assert stored[0] == samples[0] and stored[-1] == samples[-1]
    assert stored == _measurement(samples).record().samples_ms  # the same subset every time
    assert record.latency_ms.median == summarize(samples).median  # from all of them
    body = {"job_id": "j" * 32, "attempt": 1, "result": record.model_dump(mode="json")}
    assert len(json.dumps(body).encode()) < BODY_BOUND


def test_a_short_run_stores_every_sample():
    assert stored_samples([1.0, 2.0, 3.0]) == [1.0, 2.0, 3.0]
