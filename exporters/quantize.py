"""Quantized deploy forms: the float deploy form (reparameterized, Conv+BN folded, exported and
parity-checked) turned into an int8 (W8A8) or w8 (weights only) artifact, with a statement of
what it is: ``quantization: {scheme, calibration, samples, int8_mac_fraction, float_islands,
sqnr_db, cosine}``. The statement travels inside the artifact (ONNX ``metadata_props``, CoreML
user metadata under ``latbench.quantization``), so a runner reports it with every result of the
artifact wherever it is measured.

ONNX: onnxruntime's static quantization, QDQ format, per-channel int8 weights, activations in
the type the CPU provider runs fastest on this machine's architecture: uint8 on x86-64 (MLAS's
u8s8 kernels use VPMADDUBSW / VNNI's VPDPBUSD, which take unsigned × signed bytes) and int8 on
arm64 (the sdot/i8mm kernels are signed × signed). TensorRT reads the same QDQ graph on its
explicit int8 path. CoreML: ``exporters.quantize_coreml``.

The numerical effect is measured, not judged: SQNR and cosine similarity of the quantized
output against the float deploy form on inputs held aside from calibration. Only a broken
output (NaN, infinite, or collapsed to a constant) fails the export.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from exporters.calibration import Calibration
from exporters.errors import ExportError
from exporters.formats import QUANTIZATION_METADATA_KEY as METADATA_KEY
from exporters.formats import ExportFormat, Precision
from exporters.quant_numerics import batches, numerical_effect


def onnx_activation_type() -> str:
    """QUInt8 on x86-64, QInt8 on arm64: see the module docstring."""
    machine = platform.machine().lower()
    return "QInt8" if machine in {"arm64", "aarch64"} else "QUInt8"


def base_precision(fmt: ExportFormat) -> Precision:
    """The float form a quantized artifact starts from: CoreML computes in fp16 around its
    8-bit tensors (as the Neural Engine does), ONNX in fp32."""
    return Precision.FP16 if fmt is ExportFormat.COREML else Precision.FP32


def run_onnx(path: Path, inputs: np.ndarray, batch: int) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: b})[0] for b in batches(inputs, batch)])


def quantize_onnx(float_path: Path, dest: Path, calibration: Calibration) -> dict[str, Any]:
    """Static QDQ quantization of ``float_path`` into ``dest``; the statement without the
    numerical effect (the caller measures it on the held-aside inputs)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from exporters.int8_ops import int8_coverage
    from exporters.onnx import INPUT_NAME

    batch = _model_batch(float_path)
    feeds = iter([{INPUT_NAME: b} for b in batches(calibration.samples, batch)])

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(feeds, None)

    activation = onnx_activation_type()
    try:
        quantize_static(
            str(float_path),
            str(dest),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=getattr(QuantType, activation),
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:400]
        raise ExportError("onnx", f"onnxruntime quantization failed: {message}") from exc
    scheme = f"onnx QDQ, int8 per-channel weights, {activation[1:].lower()} activations, MinMax"
    return {"scheme": scheme, **calibration.record(), **int8_coverage(dest)}


def _model_batch(path: Path) -> int:
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return max(1, dims[0].dim_value) if dims else 1


def embed_onnx(path: Path, statement: dict[str, Any]) -> None:
    """Write the statement into the model's metadata, where any runner can read it."""
    import onnx

    model = onnx.load(str(path))
    entry = next((p for p in model.metadata_props if p.key == METADATA_KEY), None)
    entry = entry or model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(statement)
    onnx.save(model, str(path))


def quantize(
    fmt: ExportFormat,
    precision: Precision,
    deploy: Any,
    float_path: Path,
    dest: Path,
    calibration: Calibration,
) -> dict[str, Any]:
    """``dest``: the ``precision`` form of the float artifact at ``float_path`` (built from the
    module ``deploy``); returns the quantization statement, also embedded in the artifact."""
    if fmt is ExportFormat.ONNX and precision is Precision.INT8:
        statement = quantize_onnx(float_path, dest, calibration)
        batch = _model_batch(float_path)
        reference = run_onnx(float_path, calibration.held_aside, batch)
        statement.update(
            numerical_effect(reference, run_onnx(dest, calibration.held_aside, batch), "onnx")
        )
        statement["held_aside"] = len(calibration.held_aside)
        embed_onnx(dest, statement)
        return statement
    if fmt is ExportFormat.COREML:
        from exporters.quantize_coreml import quantize_coreml

        return quantize_coreml(precision, deploy, float_path, dest, calibration)
    raise ExportError(fmt.value, f"no {precision.value} form of {fmt.value} artifacts")
