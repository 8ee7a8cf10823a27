from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exporters.errors import SpecError
from service.gate import Verdict, decide

LATBENCH = str(Path(sys.executable).with_name("latbench"))


@pytest.mark.parametrize(
    "ratio, ci, verdict",
    [
        (1.20, (1.15, 1.25), Verdict.REGRESSION),  # slower beyond 5 %, CI excludes 1
        (1.20, (0.95, 1.45), Verdict.INCONCLUSIVE),  # slower beyond 5 %, but could be noise
        (1.03, (1.01, 1.05), Verdict.PASS),  # really slower, within the threshold
        (0.90, (0.85, 0.95), Verdict.PASS),  # faster
        (1.05, (1.04, 1.06), Verdict.PASS),  # exactly at the limit
    ],
)
def test_regression_needs_threshold_and_ci_excluding_one(ratio, ci, verdict):
    assert decide(ratio, ci, 0.05).verdict is verdict


@pytest.mark.parametrize(
    "ratio, ci, threshold, field",
    [
        (1.0, (0.9, 1.1), -0.1, "threshold"),
        (1.0, (1.1, 1.2), 0.05, "ci95"),
        (1.0, (-1.0, 1.2), 0.05, "ci95"),
    ],
)
def test_bad_input_names_the_field(ratio, ci, threshold, field):
    with pytest.raises(SpecError) as info:
        decide(ratio, ci, threshold)
    assert info.value.field == field


@pytest.mark.parametrize(
    "doc, code",
    [
        ({"ratio": 1.3, "ci95": [1.2, 1.4]}, 1),
        ({"ratio": 1.3, "ci95": [0.9, 1.7]}, 3),
        ({"ratio": 1.0, "ci95": [0.98, 1.02]}, 0),
        ({"ratio": "fast"}, 2),
    ],
)
def test_cli_exit_codes(tmp_path, doc, code):
    path = tmp_path / "cmp.json"
    path.write_text(json.dumps(doc))
    done = subprocess.run(
        [LATBENCH, "gate", str(path), "--threshold", "0.05"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == code, done.stderr


def test_cpu_metric_gates_on_the_thread_cpu_time_ratio():
    from service.gate import decide_from_json

    doc = {"ratio": 1.30, "ci95": [0.9, 1.8], "cpu_ratio": {"ratio": 1.01, "ci95": [1.0, 1.02]}}
    assert decide_from_json(json.dumps(doc), 0.05).verdict is Verdict.INCONCLUSIVE
    assert decide_from_json(json.dumps(doc), 0.05, metric="cpu").verdict is Verdict.PASS
    with pytest.raises(SpecError) as info:
        decide_from_json(json.dumps({**doc, "cpu_ratio": None}), 0.05, metric="cpu")
    assert info.value.field == "metric"
