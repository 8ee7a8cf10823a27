"""Form selection: the decision rules (CI-based winner, crossover, recorded plan) and one real
selection measured by latbench's ONNX Runtime runner."""

import json
import math
from functools import partial

import pytest
import torch

from exporters import exporter
from exporters.errors import ExportError
from exporters.exporter import ExportResult
from exporters.formats import ExportFormat
from exporters.zoo.native.parc import parc_layers, set_parc_form
from exporters.zoo.native.parc_blocks import ParCMixer
from exporters.zoo.native.parc_select import (
    FormPlan,
    FormTiming,
    LayerShape,
    choose_forms,
    crossover,
    layer_shapes,
    time_forms,
)


def _timing(size, ci, channels=8):
    low, high = ci
    return FormTiming(
        LayerShape("h", 1, channels, size, size),
        1.0,
        math.sqrt(low * high),
        math.sqrt(low * high),
        ci,
    )


@pytest.mark.parametrize(
    "ci, faster",
    [
        ((0.5, 0.9), "fft"),
        ((0.5, 1.1), "spatial"),
        ((1.1, 2.0), "spatial"),
        ((0.2, 1.0), "spatial"),
    ],
)
def test_fft_wins_only_with_the_whole_interval_below_one(ci, faster):
    assert _timing(14, ci).faster == faster


FFT, SPATIAL = (0.5, 0.8), (1.5, 3.0)


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ([SPATIAL, SPATIAL, FFT, FFT, FFT], 28),
        ([SPATIAL, SPATIAL, FFT, SPATIAL, FFT], 112),
        ([FFT] * 5, 7),
        ([SPATIAL] * 4 + [(0.5, 1.2)], None),
    ],
)
def test_crossover_is_where_fft_wins_from_then_on(pattern, expected):
    sizes = [7, 14, 28, 56, 112]
    assert crossover(_timing(n, ci) for n, ci in zip(sizes, pattern, strict=True)) == expected


def test_a_size_counts_as_fft_only_when_every_layer_of_that_size_agrees():
    timings = [_timing(56, FFT), _timing(56, SPATIAL, channels=16), _timing(112, FFT)]
    assert crossover(timings) == 112


def test_plan_is_recorded_as_a_spec_override_and_as_json():
    timings = [_timing(14, FFT), _timing(7, SPATIAL)]
    mixed = FormPlan({"a": "fft", "b": "spatial"}, timings, crossover(timings), "onnx")
    assert mixed.overrides() == {"parc_form": {"a": "fft", "b": "spatial"}}
    assert FormPlan({"a": "fft", "b": "fft"}, timings, None, "onnx").overrides() == {
        "parc_form": "fft"
    }
    assert FormPlan({"a": "spatial"}, timings, None, "onnx").overrides() == {}  # the default
    data = json.loads(json.dumps(mixed.to_dict(), allow_nan=False))
    assert [t["faster"] for t in data["timings"]] == ["fft", "spatial"] and data["crossover"] == 14


def test_fft_form_that_does_not_export_falls_back_to_spatial(monkeypatch, tmp_path):
    """A runtime without DFT support: the plan keeps spatial and says why."""

    def no_dft(model, example, precision, dest):
        if model.form == "fft":
            raise ExportError("onnx", "operator DFT is not supported", op="DFT")
        dest.write_bytes(b"graph")
        return ExportResult(path=dest, export_path="test double")

    def never_called(a, b):
        raise AssertionError("nothing to compare without an FFT artifact")

    monkeypatch.setitem(exporter._EXPORTERS, ExportFormat.ONNX, no_dft)
    timing = time_forms(LayerShape("w", 1, 8, 9, 9), never_called, tmp_path)
    assert timing.faster == "spatial" and "falling back to spatial" in timing.fft_error
    assert "DFT" in timing.fft_error
    stored = FormPlan({"x": "spatial"}, [timing], None, "onnx").to_dict()["timings"][0]
    assert stored["fft_ms"] is None and stored["ratio"] is None


@pytest.mark.slow
def test_choose_forms_measures_each_shape_once_on_the_real_runner():
    from devices.runner import get_runner
    from devices.settings import MeasureSettings

    model = torch.nn.Sequential(ParCMixer(16, 8, cross=True), ParCMixer(16, 8, cross=True)).eval()
    example = torch.randn(1, 16, 8, 10)
    shapes = layer_shapes(model, example)
    runner = get_runner("ort-cpu")
    settings = MeasureSettings(threads=1, ab_reloads=2, ab_blocks=2, warmup_max_seconds=1.0)
    plan = choose_forms(model, example, partial(runner.compare, settings=settings))

    assert set(plan.forms) == set(parc_layers(model)) and len(plan.forms) == 8
    assert len(plan.timings) == len(set(shapes.values())) == 2  # h and w layers of one size
    by_shape = {t.shape: t for t in plan.timings}
    for name, layer in parc_layers(model).items():
        assert layer.form == plan.forms[name] == by_shape[shapes[name]].faster
    assert all(t.spatial_ms > 0 and t.fft_ms > 0 and t.fft_error is None for t in plan.timings)
    fresh = torch.nn.Sequential(ParCMixer(16, 8, cross=True), ParCMixer(16, 8, cross=True))
    set_parc_form(fresh, plan.overrides().get("parc_form", "spatial"))
    assert {n: m.form for n, m in parc_layers(fresh).items()} == plan.forms
