"""The real onnxruntime and PyTorch runners on tiny artifacts, and the registry."""

import numpy as np
import pytest

from devices.inputs import random_inputs
from devices.runner import (
    ALIASES,
    get_runner,
    list_runners,
    register_runner,
    runners_for,
)
from devices.settings import parse_settings
from exporters.errors import RunnerError, RunnerUnavailableError, SpecError
from exporters.formats import DeviceClass

QUICK = {"threads": 1, "max_seconds": 3.0, "warmup_max_seconds": 2.0, "target_rel_ci": 0.02}
LATENCY_KEYS = {"median", "mean", "min", "max", "p90", "p99", "std", "iqr", "cv", "ci95", "n"}


def test_registry_lists_runners_by_device_class():
    assert {
        "ort-cpu",
        "ort-cuda",
        "ort-tensorrt",
        "torch-cpu",
        "coreml-mac",
        "coreml-iphone",
    } <= set(list_runners())
    assert ALIASES["cpu"] in runners_for(DeviceClass.of_this_cpu())
    assert runners_for("iphone12-class") == ["coreml-iphone", "coreml-mac"]
    assert set(runners_for(DeviceClass.GPU_CUDA)) == {"ort-cuda", "ort-tensorrt", "torch-cuda"}


def test_unknown_runner_and_duplicate_registration_are_refused():
    with pytest.raises(SpecError, match="unknown runner 'nope'") as err:
        get_runner("nope")
    assert err.value.field == "device"
    with pytest.raises(ValueError, match="already registered"):
        register_runner(type(get_runner("cpu")))


def test_settings_errors_name_the_field():
    with pytest.raises(SpecError) as err:
        parse_settings({"threads": 0})
    assert err.value.field == "settings.threads"
    with pytest.raises(SpecError) as err:
        parse_settings({"bogus": 1})
    assert err.value.field == "settings.bogus"


def test_ort_runner_measures_a_real_onnx_model(tiny_onnx):
    runner = get_runner("cpu")
    result = runner.measure(tiny_onnx, QUICK).to_dict()
    latency = result["latency_ms"]
    assert LATENCY_KEYS <= set(latency)
    assert 0 < latency["min"] <= latency["median"] <= latency["p99"]
    assert latency["ci95"][0] <= latency["median"] <= latency["ci95"][1]
    assert latency["n"] == len(result["samples_ms"]) >= 20
    assert result["warmup_iters"] >= 10 and result["load_ms"] > 0
    assert result["target_met"] == (result["ci_halfwidth"] <= 0.02)
    assert result["settings"]["intra_op_num_threads"] == 1
    assert result["settings"]["deviations"] == ["intra_op_num_threads"]  # threads=1 was asked
    assert result["settings"]["graph_optimization_level"] == "ORT_ENABLE_ALL"
    device = result["device"]
    assert (
        device["runtime"] == "onnxruntime"
        and device["execution_provider"] == "CPUExecutionProvider"
    )
    assert device["threads"] == 1 and device["device_class"] == DeviceClass.of_this_cpu().value
    assert {"loadavg_1m_start", "others_cpu_pct", "own_cpu_pct"} <= set(result["host_load"])


def test_ort_runner_ab_mode_on_the_same_model(tiny_onnx):
    settings = {**QUICK, "ab_reloads": 2, "ab_blocks": 5}
    comparison = get_runner("cpu").compare(tiny_onnx, tiny_onnx, settings).to_dict()
    assert comparison["reloads"] == 2 and len(comparison["per_reload_ratios"]) == 2
    assert comparison["n"] == 2 * 5 * 2  # reloads * blocks * 2 runs of each side per ABBA block
    assert comparison["ci95"][0] <= comparison["ratio"] <= comparison["ci95"][1]
    assert 0.5 < comparison["ratio"] < 2.0
    cpu = comparison["cpu_ratio"]  # single-thread CPU: the estimate on thread CPU time as well
    assert cpu["ci95"][0] <= cpu["ratio"] <= cpu["ci95"][1] and len(cpu["per_reload_ratios"]) == 2


def test_ort_runner_per_layer_breakdown(tiny_onnx):
    layers = get_runner("cpu").layers(tiny_onnx, QUICK)
    assert layers["runs"] == 20 and layers["total_ms"] > 0
    ops = {row["op"] for row in layers["by_op"]}
    assert ops & {"Conv", "FusedConv"}
    assert sum(row["share"] for row in layers["by_op"]) == pytest.approx(1.0)
    assert sum(row["ms"] for row in layers["by_block"]) == pytest.approx(layers["total_ms"])


def test_runner_refuses_missing_or_foreign_artifacts(tmp_path, tiny_pt2):
    runner = get_runner("cpu")
    with pytest.raises(RunnerError, match="does not exist"):
        runner.measure(tmp_path / "absent.onnx")
    with pytest.raises(RunnerError, match="runs .onnx artifacts"):
        runner.measure(tiny_pt2)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(RunnerError, match="onnxruntime cannot load"):
        runner.measure(broken, QUICK)


def test_torch_runner_measures_a_real_pt2_program(tiny_pt2):
    result = get_runner("torch-cpu").measure(tiny_pt2, QUICK).to_dict()
    assert result["latency_ms"]["median"] > 0 and result["latency_ms"]["n"] >= 20
    assert result["settings"]["torch_threads"] == 1 and result["settings"]["torch_mode"] == "eager"
    assert (
        result["device"]["runtime"] == "torch"
        and result["device"]["execution_provider"] == "cpu (eager)"
    )


def test_notes_qualify_numbers_measured_under_bad_conditions():
    from devices.host import HostLoad
    from devices.runner import _notes

    busy = HostLoad(
        2.0, 2.5, cpu_busy_pct=95, own_cpu_pct=45, others_cpu_pct=50, wall_s=3
    ).busy_note()
    assert "other processes used 50% of the CPU" in busy
    assert (
        HostLoad(0.1, 0.1, cpu_busy_pct=50, own_cpu_pct=45, others_cpu_pct=5, wall_s=3).busy_note()
        is None
    )
    assert _notes(True, True, None) == []
    notes = _notes(False, False, busy)
    assert len(notes) == 3 and "warm-up" in notes[0] and "precision target" in notes[1]


def test_single_thread_cpu_runs_also_report_thread_cpu_time(tiny_onnx):
    result = get_runner("cpu").measure(tiny_onnx, QUICK).to_dict()
    cpu = result["cpu_ms"]
    assert cpu["n"] == result["latency_ms"]["n"]
    # CPU time of the computing thread never exceeds the wall time around the same call
    assert 0 < cpu["min"] and cpu["median"] <= result["latency_ms"]["median"] * 1.05
    two_threads = get_runner("cpu").measure(tiny_onnx, {**QUICK, "threads": 2}).to_dict()
    assert two_threads["cpu_ms"] is None


def test_gpu_runners_say_why_they_are_unavailable_and_configure_providers():
    from devices.ort import OrtCudaRunner, OrtTensorrtRunner

    for cls in (OrtCudaRunner, OrtTensorrtRunner):
        reason = cls.unavailable_reason()
        if reason is not None:  # this onnxruntime build has no GPU providers
            assert f"{cls.provider} is not in this onnxruntime build" in reason
            with pytest.raises(RunnerUnavailableError, match=cls.provider):
                get_runner(cls.name)
    assert OrtCudaRunner(device_id=1).providers() == [("CUDAExecutionProvider", {"device_id": 1})]
    trt, cuda = OrtTensorrtRunner(fp16=True, engine_cache="/cache").providers()
    assert trt == (
        "TensorrtExecutionProvider",
        {"device_id": 0, "trt_fp16_enable": True, "trt_int8_enable": False,
         "trt_engine_cache_enable": True, "trt_engine_cache_path": "/cache"},
    )  # fmt: skip
    assert cuda == ("CUDAExecutionProvider", {"device_id": 0})
    int8, _ = OrtTensorrtRunner().providers(int8=True)  # a QDQ graph: TensorRT's int8 path
    assert int8[1]["trt_int8_enable"] is True


def test_input_pool_is_random_distinct_and_bounded_in_memory():
    small = random_inputs([("input", (1, 3, 8, 8), np.float32)], pool=4, seed=0)
    assert len(small) == 4 and not np.array_equal(small[0]["input"], small[1]["input"])
    assert all(np.abs(s["input"]).sum() > 0 for s in small)  # never zeros
    big = random_inputs([("input", (16, 3, 1024, 1024), np.float32)], pool=64, seed=0)
    assert 0 < len(big) < 64 and len(big) * big[0]["input"].nbytes <= 256 * 1024 * 1024
