"""Closed sets shared by exporters, runners and the service (torch-free, so device hosts import it).

Adding a member here is deliberate: every ``match`` over these enums must then handle it.
"""

from __future__ import annotations

import platform
from enum import Enum

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
