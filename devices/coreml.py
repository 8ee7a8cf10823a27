"""CoreML runners (macOS only): the Mac itself, and an iPhone tethered to it.

* ``coreml-mac`` predicts on this Mac's Apple silicon. The M1 and the iPhone 12's A14 share a
  Neural Engine generation, so an M1 is the closest stand-in when no phone is attached; the device
  label says so (and says when the chip is not an M1).
* ``coreml-iphone`` uses coremltools' experimental remote-device service (Xcode's ``devicectl``
  installs a model-runner app on the phone); latencies are the phone's own prediction timings, so
  the USB transfer of inputs is not counted.

Load (compilation for the chosen compute units) is timed separately from prediction. On any other
OS these runners are registered but unavailable, and say why when asked to measure.
"""

from __future__ import annotations

import asyncio
import importlib.util
import platform
import time
from itertools import cycle
from pathlib import Path
from typing import Any

import numpy as np

from devices.host import cpu_model
from devices.inputs import random_inputs
from devices.runner import Runner, Session, register_runner
from devices.settings import MeasureSettings
from exporters.errors import RunnerError, RunnerUnavailableError
from exporters.formats import DeviceClass, ExportFormat

# MLMultiArray data types (FeatureTypes_pb2.ArrayFeatureType.ArrayDataType) we can feed.
_ARRAY_DTYPES = {65568: np.float32, 65552: np.float16, 65600: np.float64}


def coreml_unavailable(system: str | None = None) -> str | None:
    system = system or platform.system()
    if system != "Darwin":
        return (
            f"CoreML prediction needs macOS with Apple silicon (this host runs {system}); "
            "export the .mlpackage here and measure it with a runner on a Mac"
        )
    if importlib.util.find_spec("coremltools") is None:
        return "coremltools is not installed (pip install coremltools)"
    return None


def mac_label(chip: str) -> str:
    """Device label: an M1 is the iPhone 12 stand-in; other chips are labelled as approximations."""
    if "M1" in chip.split():
        return f"{chip} Mac (stand-in for iPhone 12: M1 and A14 share a Neural Engine generation)"
    return f"{chip} Mac (Apple silicon; not the iPhone 12's Neural Engine generation)"


def mlpackage_weights_dir(artifact: Path) -> Path:
    return artifact / "Data" / "com.apple.CoreML" / "weights"


def input_specs(spec: Any) -> list[tuple[str, tuple[int, ...], Any]]:
    """(name, shape, dtype) of a model spec's MLMultiArray inputs; image inputs are refused."""
    specs = []
    for feature in spec.description.input:
        if feature.type.WhichOneof("Type") != "multiArrayType":
            raise RunnerError(f"input {feature.name!r} is not a tensor (MLMultiArray) input")
        array = feature.type.multiArrayType
        if array.dataType not in _ARRAY_DTYPES:
            raise RunnerError(f"input {feature.name!r} has unsupported data type {array.dataType}")
        specs.append(
            (feature.name, tuple(int(d) for d in array.shape), _ARRAY_DTYPES[array.dataType])
        )
    return specs


def options_record(settings: MeasureSettings, target: str, model: Any) -> dict[str, Any]:
    """Compute units as the loaded model reports them (``MLModel.compute_unit``; the requested
    value where the wrapper has no such attribute); ALL is Core ML's default, anything else is
    listed as a deviation."""
    unit = getattr(getattr(model, "compute_unit", None), "name", settings.compute_units)
    return {
        "compute_units": unit,
        "coreml_target": target,
        "deviations": [] if unit == "ALL" else ["compute_units"],
    }


class CoreMLMacSession(Session):
    def __init__(self, artifact: Path, settings: MeasureSettings) -> None:
        import coremltools as ct

        start = time.perf_counter()
        try:
            self.model = ct.models.MLModel(
                str(artifact), compute_units=getattr(ct.ComputeUnit, settings.compute_units)
            )
        except Exception as exc:  # coremltools raises generic errors for bad packages
            raise RunnerError(f"CoreML cannot load {artifact.name!r}: {exc}") from exc
        self.load_ms = (time.perf_counter() - start) * 1e3
        specs = input_specs(self.model.get_spec())
        self._inputs = cycle(random_inputs(specs, settings.input_pool, settings.seed))
        self.options = options_record(settings, "mac", self.model)

    def run(self) -> float:
        feed = next(self._inputs)
        start = time.perf_counter_ns()
        self.model.predict(feed)
        return (time.perf_counter_ns() - start) / 1e6

    def close(self) -> None:
        del self.model

    def metadata(self) -> dict[str, str]:
        return dict(self.model.user_defined_metadata)


class CoreMLRemoteSession(Session):
    """Timings come from the phone (``last_predict_duration_in_nano_seconds``)."""

    def __init__(self, artifact: Path, settings: MeasureSettings, device: Any) -> None:
        import coremltools as ct
        from coremltools.models.ml_program.experimental.async_wrapper import MLModelAsyncWrapper

        self.loop = asyncio.new_event_loop()
        self.model = MLModelAsyncWrapper.from_spec_or_path(
            spec_or_path=str(artifact),
            weights_dir=str(mlpackage_weights_dir(artifact)),
            compute_units=getattr(ct.ComputeUnit, settings.compute_units),
            device=device,
        )
        self.loop.run_until_complete(self.model.load())
        self.load_ms = (self.model.load_duration_in_nano_seconds or 0) / 1e6
        spec = ct.models.MLModel(str(artifact), skip_model_load=True).get_spec()
        self._inputs = cycle(random_inputs(input_specs(spec), settings.input_pool, settings.seed))
        self.options = options_record(settings, f"iphone:{device.name}", self.model)

    def run(self) -> float:
        self.loop.run_until_complete(self.model.predict(next(self._inputs)))
        return self.model.last_predict_duration_in_nano_seconds / 1e6

    def close(self) -> None:
        self.loop.run_until_complete(self.model.unload())
        self.loop.close()


class _CoreMLRunner(Runner):
    device_class = DeviceClass.IPHONE12_CLASS
    formats = (ExportFormat.COREML,)
    runtime = "coremltools"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return coreml_unavailable()

    def _require_available(self) -> None:
        reason = self.unavailable_reason()
        if reason is not None:
            raise RunnerUnavailableError(f"runner {self.name!r} cannot run on this host: {reason}")

    def _facts(self, settings: MeasureSettings, label: str) -> dict[str, Any]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            runtime_version = version("coremltools")
        except PackageNotFoundError:
            runtime_version = "absent"
        return {"runtime_version": runtime_version, "execution_provider": "CoreML",
                "compute_units": settings.compute_units, "label": label}  # fmt: skip


@register_runner
class CoreMLMacRunner(_CoreMLRunner):
    name = "coreml-mac"

    def runtime_facts(self, settings: MeasureSettings) -> dict[str, Any]:
        return self._facts(settings, mac_label(cpu_model()))

    def open(self, artifact: Path, settings: MeasureSettings) -> Session:
        self._require_available()
        return CoreMLMacSession(artifact, settings)


def _connected_phones() -> list[Any]:
    from coremltools.models.ml_program.experimental.remote_device import Device, DeviceType

    return list(Device.get_connected_devices(DeviceType.IPHONE))


@register_runner
class CoreMLIphoneRunner(_CoreMLRunner):
    """Options: ``development_team`` (Apple team id that signs the model-runner app)."""

    name = "coreml-iphone"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Without a tethered phone this runner is unavailable, so an iphone12-class job goes to
        ``coreml-mac``, the labelled stand-in, instead of failing."""
        reason = coreml_unavailable()
        if reason is None and not _connected_phones():
            return "no iPhone is connected (Xcode's devicectl lists none); coreml-mac stands in"
        return reason

    def runtime_facts(self, settings: MeasureSettings) -> dict[str, Any]:
        return self._facts(settings, "tethered iPhone (reference: iPhone 12)")

    def _device(self) -> Any:
        from coremltools.models.ml_program.experimental.remote_device import AppSigningCredentials

        phones = _connected_phones()
        if not phones:
            raise RunnerError("no iPhone is connected (Xcode's devicectl lists none)")
        credentials = AppSigningCredentials(
            development_team=self.options.get("development_team", "")
        )
        return asyncio.run(phones[0].prepare_for_model_debugging(credentials=credentials))

    def open(self, artifact: Path, settings: MeasureSettings) -> Session:
        self._require_available()
        if not hasattr(self, "_phone"):
            self._phone = self._device()
        return CoreMLRemoteSession(artifact, settings, self._phone)
