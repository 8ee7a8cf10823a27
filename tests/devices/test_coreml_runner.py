"""CoreML runners: what they say on Linux, and their pure logic (labels, settings, input specs)."""

import platform

import numpy as np
import pytest

from devices.coreml import (
    CoreMLMacRunner,
    coreml_unavailable,
    input_specs,
    mac_label,
    mlpackage_weights_dir,
)
from devices.runner import get_runner
from devices.settings import parse_settings
from exporters.errors import RunnerError, RunnerUnavailableError, SpecError

linux_only = pytest.mark.skipif(platform.system() == "Darwin", reason="non-macOS behaviour")


@linux_only
@pytest.mark.parametrize("name", ["coreml-mac", "coreml-iphone", "coreml"])
def test_coreml_runners_refuse_clearly_off_macos(name):
    with pytest.raises(RunnerUnavailableError, match="needs macOS"):
        get_runner(name)


@linux_only
def test_measuring_directly_also_refuses(tmp_path):
    package = tmp_path / "m.mlpackage"
    package.mkdir()
    with pytest.raises(RunnerUnavailableError, match=f"this host runs {platform.system()}"):
        CoreMLMacRunner().measure(package)


def test_unavailable_reason_by_os():
    assert "needs macOS" in coreml_unavailable("Linux")
    assert coreml_unavailable("Darwin") is None  # coremltools is installed in the dev env


def test_mac_label_marks_the_m1_as_iphone12_stand_in():
    assert "stand-in for iPhone 12" in mac_label("Apple M1")
    assert "stand-in" not in mac_label("Apple M3 Pro") and "not the iPhone 12" in mac_label(
        "Apple M3 Pro"
    )


def test_description_and_settings():
    info = CoreMLMacRunner().describe(parse_settings({"compute_units": "CPU_AND_NE"})).to_dict()
    assert info["device_class"] == "iphone12-class" and info["compute_units"] == "CPU_AND_NE"
    assert info["runtime"] == "coremltools" and info["runner"] == "coreml-mac"
    with pytest.raises(SpecError) as err:
        parse_settings({"compute_units": "GPU"})
    assert err.value.field == "settings.compute_units"


def test_input_specs_from_a_model_spec(tmp_path):
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    feature = spec.description.input.add()
    feature.name = "x"
    feature.type.multiArrayType.shape.extend([1, 3, 8, 8])
    feature.type.multiArrayType.dataType = Model_pb2.ArrayFeatureType.FLOAT16
    assert input_specs(spec) == [("x", (1, 3, 8, 8), np.float16)]
    image = spec.description.input.add()
    image.name = "img"
    image.type.imageType.width = 8
    with pytest.raises(RunnerError, match="'img' is not a tensor"):
        input_specs(spec)
    assert mlpackage_weights_dir(tmp_path / "m.mlpackage").parts[-3:] == (
        "Data",
        "com.apple.CoreML",
        "weights",
    )


def test_iphone_class_without_a_tethered_phone_goes_to_the_mac_stand_in(monkeypatch):
    """Pure selection logic, as on a Mac with no phone attached (runtime checks stubbed)."""
    from devices import coreml
    from devices.jobs.profile import runner_name
    from exporters.formats import DeviceClass, ExportFormat

    monkeypatch.setattr(coreml, "coreml_unavailable", lambda system=None: None)
    monkeypatch.setattr(coreml, "_connected_phones", list)
    assert "coreml-mac stands in" in coreml.CoreMLIphoneRunner.unavailable_reason()
    assert runner_name(DeviceClass.IPHONE12_CLASS, ExportFormat.COREML) == "coreml-mac"
    monkeypatch.setattr(coreml, "_connected_phones", lambda: ["iPhone 12"])
    assert runner_name(DeviceClass.IPHONE12_CLASS, ExportFormat.COREML) == "coreml-iphone"
