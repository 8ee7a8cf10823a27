"""CoreML quantized forms through ``coremltools.optimize``, converted and checked on any OS.

- ``w8``: 8-bit weights (``optimize.coreml.linear_quantize_weights``, symmetric, per channel)
  on the fp16 float package: smaller, decompressed to fp16 at load or on the fly; compute stays
  fp16, so nothing runs in int8 (its int8 MAC fraction is 0 by construction).
- ``int8`` (W8A8): ``optimize.torch``'s ``LinearQuantizer`` observes activation ranges on the
  calibration inputs in PyTorch (Core ML's own activation calibration predicts, which needs
  macOS), then the fake-quantized module converts to a program with ``quantize`` /
  ``dequantize`` around each layer (iOS 17 ops), which the Neural Engine of A17 Pro / M4 and
  later runs in int8.

What is quantized is read from the converted program: the MAC share of convolutions and matrix
products whose weight is 8-bit and whose input is a dequantized 8-bit activation. The numerical
effect is the Core ML prediction against the float package on macOS; elsewhere the W8A8 figure
is PyTorch's fake-quantized simulation of it, and says so.
"""

from __future__ import annotations

import copy
import json
import sys
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from exporters.calibration import Calibration
from exporters.errors import ExportError
from exporters.formats import QUANTIZATION_METADATA_KEY as METADATA_KEY
from exporters.formats import Precision
from exporters.quant_numerics import batches, numerical_effect

COMPUTE_OPS = ("conv", "conv_transpose", "linear", "matmul")
W8A8_TARGET = "iOS17"  # quantize / dequantize of activations are iOS 17 ops


def program_coverage(mlmodel: Any) -> dict[str, Any]:
    """MAC shares of the compute ops with 8-bit weights and with 8-bit weights and inputs."""
    total = weights = both = 0
    islands: dict[str, dict[str, int]] = {}
    for function in mlmodel._mil_program.functions.values():
        for op in _walk(function.operations):
            if op.op_type not in COMPUTE_OPS:
                continue
            macs = _macs(op)
            total += macs
            weight = getattr(op, "weight", None) if op.op_type != "matmul" else op.y
            w8 = weight is not None and weight.op is not None and _is_8bit(weight.op)
            a8 = op.x.op is not None and op.x.op.op_type == "dequantize"
            weights += macs if w8 else 0
            both += macs if w8 and a8 else 0
            if not (w8 and a8):
                island = islands.setdefault(op.op_type, {"nodes": 0, "macs": 0})
                island["nodes"] += 1
                island["macs"] += macs
    listed = [{"op": name, **figures} for name, figures in islands.items()]
    return {
        "int8_mac_fraction": round(both / total, 4) if total else 0.0,
        "quantized_weight_mac_fraction": round(weights / total, 4) if total else 0.0,
        "macs": total,
        "float_islands": sorted(listed, key=lambda i: -i["macs"]),
        "analysed_on": "the converted Core ML program (MIL)",
    }


def _walk(operations: Any) -> Any:
    for op in operations:
        yield op
        for block in op.blocks:
            yield from _walk(block.operations)


def _is_8bit(producer: Any) -> bool:
    if producer.op_type.startswith("constexpr_"):
        return True
    return producer.op_type == "dequantize"


def _macs(op: Any) -> int:
    out = prod(int(d) for d in op.outputs[0].shape)
    if op.op_type in ("conv", "conv_transpose"):
        shape = op.weight.shape
        if op.op_type == "conv_transpose":
            return prod(int(d) for d in op.x.shape) * prod(int(d) for d in shape[1:])
        return out * prod(int(d) for d in shape[1:])
    if op.op_type == "linear":
        return out * int(op.weight.shape[-1])
    return out * int(op.x.shape[-1])


def _w8(float_path: Path) -> Any:
    import coremltools as ct
    import coremltools.optimize as cto

    model = ct.models.MLModel(str(float_path), skip_model_load=sys.platform != "darwin")
    config = cto.coreml.OptimizationConfig(
        global_config=cto.coreml.OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=0
        )
    )
    return cto.coreml.linear_quantize_weights(model, config)


def _fake_quantized(deploy: Any, calibration: Calibration, batch: int) -> Any:
    """The deploy module with observed int8 activation and weight ranges, finalized."""
    import torch
    from coremltools.optimize.torch.quantization import (
        LinearQuantizer,
        LinearQuantizerConfig,
        ModuleLinearQuantizerConfig,
    )

    # milestones: observers on from step 0; fake quantization, observer freeze and BN freeze
    # never reached (calibration only: this is post-training quantization, not training)
    config = LinearQuantizerConfig(
        global_config=ModuleLinearQuantizerConfig(
            quantization_scheme="symmetric", milestones=[0, 10**9, 10**9, 0]
        )
    )
    feeds = [torch.from_numpy(b) for b in batches(calibration.samples, batch)]
    quantizer = LinearQuantizer(copy.deepcopy(deploy), config)
    prepared = quantizer.prepare(example_inputs=(feeds[0],), inplace=True)
    quantizer.step()
    with torch.no_grad():
        for feed in feeds:
            prepared(feed)
    return quantizer.finalize(prepared, inplace=True).eval()


def _torch_outputs(module: Any, inputs: np.ndarray, batch: int) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(b)).numpy() for b in batches(inputs, batch)])


def _w8a8(deploy: Any, calibration: Calibration, batch: int) -> tuple[Any, dict]:
    import torch

    from exporters import coreml

    quantized = _fake_quantized(deploy, calibration, batch)
    example = torch.from_numpy(batches(calibration.samples, batch)[0])
    converted = coreml.convert(
        "jit.trace", coreml.capture_trace, quantized, example, Precision.FP16, W8A8_TARGET
    )
    if isinstance(converted, coreml.Failure):
        raise ExportError("coreml", f"W8A8 conversion failed: {converted.message}", op=converted.op)
    effect: dict[str, Any] = {}
    if sys.platform != "darwin":
        aside = calibration.held_aside
        reference = _torch_outputs(deploy, aside, batch)
        effect = numerical_effect(reference, _torch_outputs(quantized, aside, batch), "coreml")
        effect["sqnr_source"] = "PyTorch fake-quantized simulation (no Core ML runtime here)"
    return converted, effect


def _load(path: Path) -> Any:
    import coremltools as ct

    return ct.models.MLModel(str(path), skip_model_load=sys.platform != "darwin")


def _predicted_effect(float_path: Path, quantized: Any, inputs: np.ndarray, batch: int) -> dict:
    """macOS: Core ML's own outputs of both models on the held-aside inputs."""
    from exporters.coreml import INPUT_NAME, OUTPUT_NAME

    outputs = []
    for model in (_load(float_path), quantized):
        outputs.append(
            np.concatenate(
                [model.predict({INPUT_NAME: b})[OUTPUT_NAME] for b in batches(inputs, batch)]
            )
        )
    return {**numerical_effect(outputs[0], outputs[1], "coreml"), "sqnr_source": "Core ML"}


def quantize_coreml(
    precision: Precision, deploy: Any, float_path: Path, dest: Path, calibration: Calibration
) -> dict[str, Any]:
    """``dest``: the W8 or W8A8 package; returns the quantization statement (also embedded in
    the package's user metadata)."""
    from exporters.coreml import inspect_package

    batch = int(inspect_package(float_path)["inputs"][0]["shape"][0] or 1)
    if precision is Precision.W8:
        model = _w8(float_path)
        scheme, effect = "coreml W8: int8 per-channel symmetric weights, fp16 compute", {}
        statement = {"scheme": scheme, "calibration": "none", "samples": 0, "set": None}
    elif precision is Precision.INT8:
        model, effect = _w8a8(deploy, calibration, batch)
        scheme = "coreml W8A8: int8 weights and activations (optimize.torch LinearQuantizer)"
        statement = {"scheme": scheme, **calibration.record()}
    else:
        raise ExportError("coreml", f"{precision.value} is not a quantized precision")
    statement.update(program_coverage(model))
    if sys.platform == "darwin":
        effect = _predicted_effect(float_path, model, calibration.held_aside, batch)
    statement.update(effect or {"sqnr_db": None, "sqnr_source": "needs the Core ML runtime"})
    statement["held_aside"] = len(calibration.held_aside) if effect else 0
    model.user_defined_metadata[METADATA_KEY] = json.dumps(statement)
    model.save(str(dest))
    return statement
