"""Closed sets shared by exporters, runners and the service (torch-free, so device hosts import it).

Adding a member here is deliberate: every ``match`` over these enums must then handle it.
"""

from __future__ import annotations

import difflib
import platform
from enum import Enum
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from exporters.errors import SpecError

# where a quantized artifact states how it was quantized (ONNX metadata_props, CoreML user
# metadata): runners read it from the artifact and report it with every result
QUANTIZATION_METADATA_KEY = "latbench.quantization"


class Precision(str, Enum):
    """Numeric form of a deploy artifact. ``int8``: weights and activations in 8 bits (W8A8,
    calibrated); ``w8``: 8-bit weights only, computed in float (CoreML's weight compression)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    W8 = "w8"

    @property
    def quantized(self) -> bool:
        return self in (Precision.INT8, Precision.W8)

    @property
    def calibrated(self) -> bool:
        """Activations are quantized, so their ranges come from calibration inputs."""
        return self is Precision.INT8


class ExportFormat(str, Enum):
    ONNX = "onnx"
    COREML = "coreml"
    TORCH_EXPORT = "pt2"

    @property
    def suffix(self) -> str:
        """File (or, for CoreML, directory) name ending of an artifact of this format."""
        return {"onnx": ".onnx", "coreml": ".mlpackage", "pt2": ".pt2"}[self.value]

    @property
    def precisions(self) -> frozenset[Precision]:
        """Precisions the exporter writes: ONNX fp32 (runtimes choose their own float form) or
        int8 (a QDQ graph: onnxruntime's CPU kernels and TensorRT's explicit int8 path read it);
        CoreML every one; pt2 fp32 only."""
        if self is ExportFormat.COREML:
            return frozenset(Precision)
        if self is ExportFormat.ONNX:
            return frozenset({Precision.FP32, Precision.INT8})
        return frozenset({Precision.FP32})

    def default_precision(self, requested: Precision | None) -> Precision:
        """The requested precision, else the deployed default (CoreML fp16, others fp32)."""
        if requested is not None:
            return requested
        return Precision.FP16 if self is ExportFormat.COREML else Precision.FP32

    def precision_error(self, requested: Precision | None) -> SpecError | None:
        """Why this format cannot be exported at ``requested``, or None when it can."""
        precision = self.default_precision(requested)
        if precision in self.precisions:
            return None
        allowed = ", ".join(sorted(p.value for p in self.precisions))
        return SpecError(
            f"{self.value} is exported in {allowed}, not {precision.value}", field="precision"
        )


class DeviceClass(str, Enum):
    """What a result is comparable across: two runners of one class measure the same thing."""

    CPU_X86_64 = "cpu-x86_64"
    CPU_ARM64 = "cpu-arm64"
    GPU_CUDA = "gpu-cuda"
    IPHONE12_CLASS = "iphone12-class"

    @property
    def formats(self) -> tuple[ExportFormat, ...]:
        """Artifact formats a runner of this class can execute, preferred first."""
        if self is DeviceClass.IPHONE12_CLASS:
            return (ExportFormat.COREML,)
        return (ExportFormat.ONNX, ExportFormat.TORCH_EXPORT)

    @classmethod
    def of_this_cpu(cls) -> DeviceClass:
        machine = platform.machine().lower()
        if machine in {"arm64", "aarch64"}:
            return cls.CPU_ARM64
        return cls.CPU_X86_64


# Short names a user types for a class; ``cpu`` is resolved per host by ``parse_device_class``.
DEVICE_ALIASES: dict[str, str] = {
    "x86_64": DeviceClass.CPU_X86_64.value,
    "x86": DeviceClass.CPU_X86_64.value,
    "amd64": DeviceClass.CPU_X86_64.value,
    "arm64": DeviceClass.CPU_ARM64.value,
    "aarch64": DeviceClass.CPU_ARM64.value,
    "gpu": DeviceClass.GPU_CUDA.value,
    "cuda": DeviceClass.GPU_CUDA.value,
    "iphone": DeviceClass.IPHONE12_CLASS.value,
    "iphone12": DeviceClass.IPHONE12_CLASS.value,
}


def device_class_choices() -> str:
    """The one wording of what a device may be, shown in every error and ``--help``."""
    return ", ".join(["cpu (this host's CPU)", *(d.value for d in DeviceClass)])


def device_class_error(value: object) -> str | None:
    """Why ``value`` names no device class (with the close match), or None when it names one."""
    text = str(value).strip().lower()
    if text == "cpu" or text in DEVICE_ALIASES or text in {d.value for d in DeviceClass}:
        return None
    names = ["cpu", *DEVICE_ALIASES, *(d.value for d in DeviceClass)]
    close = difflib.get_close_matches(text, names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown device class {value!r}{hint}; choose from {device_class_choices()}"


def parse_device_class(value: DeviceClass | str, *, field: str = "device") -> DeviceClass:
    """A device class from what a user wrote: its name, ``cpu`` (this host's CPU class) or an
    alias (``gpu``, ``iphone``, ``arm64``, ...); every command, the API and latbench.toml parse
    devices here, so one wording and one set of aliases holds everywhere."""
    if isinstance(value, DeviceClass):
        return value
    problem = device_class_error(value)
    if problem is not None:
        raise SpecError(problem, field=field)
    text = value.strip().lower()
    if text == "cpu":
        return DeviceClass.of_this_cpu()
    return DeviceClass(DEVICE_ALIASES.get(text, text))


def _validate_device_class(value: object) -> object:
    if isinstance(value, str) and not isinstance(value, DeviceClass):
        problem = device_class_error(value)
        if problem is not None:
            raise PydanticCustomError("device_class", problem)
        return parse_device_class(value)
    return value


# A pydantic field type taking what ``parse_device_class`` takes (API bodies, latbench.toml).
DeviceClassInput = Annotated[DeviceClass, BeforeValidator(_validate_device_class)]
