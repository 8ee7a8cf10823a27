"""A single-model profile runs with the runtime's default options, read back from the session;
A/B mode's isolation and every explicit setting are recorded as deviations; every result carries
its conditions; sustained mode reports windows; the layer run reports the profiler's overhead."""

import json
import subprocess
import sys

import onnxruntime as ort
import pytest

from devices.conditions import READERS, snapshot
from devices.host import default_threads
from devices.runner import get_runner
from devices.sampling import sample_for
from devices.settings import ab_isolated, parse_settings

FAST = {"max_seconds": 2.0, "warmup_max_seconds": 1.0, "target_rel_ci": 0.05}


def _measured_settings(model, settings) -> dict:
    """The recorded settings of one measurement in a fresh interpreter: the pool size is read
    from the threads the session starts, which other tests' threads in this process (a load
    monitor ending, a pool of an earlier session) would blur."""
    script = (
        "import json, sys; from devices.runner import get_runner; "
        "r = get_runner('cpu').measure(sys.argv[1], json.loads(sys.argv[2])); "
        "print(json.dumps(r.to_dict()['settings']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(model), json.dumps(settings)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_default_profile_uses_onnxruntimes_default_session_options(tiny_onnx):
    opts, default = _measured_settings(tiny_onnx, FAST), ort.SessionOptions()
    assert opts["deviations"] == []  # nothing differs from a fresh SessionOptions()
    assert opts["intra_op_num_threads_set"] == default.intra_op_num_threads == 0
    assert opts["intra_op_num_threads"] == default_threads()
    assert opts["intra_op_threads_started"] == default_threads()  # the pool really started so
    assert opts["intra_op_spinning"] is True  # onnxruntime spins unless told not to
    assert opts["execution_mode"] == "sequential"
    assert opts["graph_optimization_level"] == default.graph_optimization_level.name


def test_explicit_settings_are_recorded_as_deviations(tiny_onnx):
    settings = {**FAST, "threads": 1, "intra_op_spinning": False, "graph_optimization": "basic"}
    opts = _measured_settings(tiny_onnx, settings)
    assert opts["intra_op_threads_started"] == 1 and opts["intra_op_spinning"] is False
    assert set(opts["deviations"]) == {
        "intra_op_num_threads",
        "graph_optimization_level",
        "session.intra_op.allow_spinning",
    }


def test_ab_mode_turns_spinning_off_unless_the_user_chose(tiny_onnx):
    assert ab_isolated(parse_settings({})).intra_op_spinning is False
    assert ab_isolated(parse_settings({"intra_op_spinning": True})).intra_op_spinning is True
    settings = {**FAST, "threads": 2, "ab_reloads": 2, "ab_blocks": 3}
    comparison = get_runner("cpu").compare(tiny_onnx, tiny_onnx, settings).to_dict()
    assert comparison["settings"]["intra_op_spinning"] is False
    assert "session.intra_op.allow_spinning" in comparison["settings"]["deviations"]
    assert set(comparison["conditions"]["start"]) == set(READERS)


def test_conditions_are_in_every_result_and_missing_sources_say_why(tiny_onnx, tiny_pt2):
    for runner, artifact in (("cpu", tiny_onnx), ("torch-cpu", tiny_pt2)):
        cond = get_runner(runner).measure(artifact, {**FAST, "threads": 1}).to_dict()["conditions"]
        assert set(cond["start"]) == set(cond["end"]) == set(READERS)
        assert cond["versions"]["onnxruntime"] == ort.__version__
        for reading in cond["start"].values():  # each read from a named source, or says why not
            assert (reading["value"] is None) == ("unavailable" in reading)
            assert reading.get("source") or reading.get("unavailable")


def test_conditions_read_this_hosts_sources():
    readings = snapshot()
    freq = readings["cpu_frequency_mhz"]
    if freq["value"] is not None:
        assert freq["source"].startswith("cpufreq") and all(mhz > 0 for mhz in freq["value"])
    else:
        assert "cpufreq" in freq["unavailable"]
    assert readings["power_source"]["value"] in {None, "ac", "battery"}


def test_sustained_mode_reports_the_median_per_window(tiny_onnx):
    settings = {**FAST, "threads": 1, "sustained_seconds": 1.5, "window_seconds": 0.5}
    result = get_runner("cpu").measure(tiny_onnx, settings).to_dict()
    windows = result["windows"]
    assert result["stop_reason"] == "sustained" and 2 <= len(windows) <= 4
    assert sum(w["n"] for w in windows) == result["latency_ms"]["n"]
    assert [w["start_s"] for w in windows] == sorted(w["start_s"] for w in windows)
    assert all(w["median_ms"] > 0 for w in windows)


def test_sample_for_cuts_a_fixed_duration_into_windows():
    now = [0.0]

    def run() -> float:  # each run takes 0.25 s of the fake clock; slower as it "heats"
        now[0] += 0.25
        return 1.0 + now[0] / 10

    windows = sample_for(run, seconds=10, window_s=3, clock=lambda: now[0])
    assert [w.start_s for w in windows] == [0, 3, 6, 9]
    assert [len(w.samples) for w in windows] == [12, 12, 12, 4]
    medians = [sorted(w.samples)[len(w.samples) // 2] for w in windows]
    assert medians == sorted(medians)  # the trend is visible window by window


def test_layer_run_reports_the_plain_median_and_the_profilers_overhead(tiny_onnx):
    result = get_runner("cpu").measure(tiny_onnx, {**FAST, "threads": 1}, layers=True).to_dict()
    overhead = result["profiler_overhead"]
    assert overhead["plain_median_ms"] == result["latency_ms"]["median"]
    assert overhead["layer_sum_ms"] == pytest.approx(result["layers"]["total_ms"])
    assert overhead["profiled_median_ms"] == result["layers"]["run_ms_median"] > 0
    ratio = overhead["profiled_median_ms"] / overhead["plain_median_ms"] - 1
    assert overhead["overhead"] == pytest.approx(ratio)
    # node times are a part of the whole runs the profiler timed: means on both sides, since on
    # a loaded host a few slow runs lift the mean of the node times above the runs' median
    assert 0 < overhead["layer_sum_ms"] <= result["layers"]["run_ms_mean"]
