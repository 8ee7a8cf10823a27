"""CoreML exporter: an ML program (``.mlpackage``) for iPhone-class runners.

Two captures feed ``ct.convert``: ``torch.export`` first, ``jit.trace`` as fallback. Traced
mobilevit_* and fastvit_sa*/ma*/mci* graphs keep an ``aten::Int`` on a 1-element shape tensor that
coremltools 9.0 casts with ``int(array)``, a TypeError since NumPy 2.4 (apple/coremltools#2633,
fixed upstream by #2632, unreleased); every seed family converts from ``torch.export``. The
exported program is first lowered to ops coremltools has (``coreml_prep``: ``alias`` removed,
``unfold`` and bicubic resize decomposed).

Linux has no Core ML runtime, so the saved package is checked from its spec (inputs, outputs,
deployment target, compute precision, op histogram); on macOS a prediction also gives parity.
"""

from __future__ import annotations

import contextlib
import io
import logging
import logging.handlers
import re
import shutil
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exporters.coreml_prep import coreml_ready
from exporters.errors import ExportError
from exporters.exporter import ExportResult, named_op, register_exporter, relative_error
from exporters.formats import ExportFormat, Precision

# iOS16 (specification 7, MIL opset CoreML6): the first target where fp16 programs take fp16
# inputs without cast ops, and the OS of the reference iPhone 12 figures. Nothing needs later.
DEPLOYMENT_TARGET = "iOS16"
INPUT_NAME = "input"
OUTPUT_NAME = "output"
COMPUTE_PRECISION = {Precision.FP16: "FLOAT16", Precision.FP32: "FLOAT32"}  # ct.precision names
PARITY_TOLERANCE = {Precision.FP32: 1e-3, Precision.FP16: 5e-2}  # relative
FP16_MAX = 65504.0
NO_RUNTIME = "skipped: prediction requires macOS (Core ML runtime); package checked from its spec"

# What coremltools and torch say when an op does not convert; the first group is the op.
_OP_PATTERNS = (
    r"converting '([^']+)' op",  # coremltools' log line before it re-raises
    r"convert function for op '([^']+)' not implemented",
    r"Unsupported fx node \S+, kind (\S+)",
    r"aten[:.]+([A-Za-z_0-9]+)",
)
_LOCATION = re.compile(r"located at: '([^']*)'")


@dataclass(frozen=True)
class Failure:
    path: str  # capture path that failed
    message: str  # first line of the error, with the op's location when coremltools logged it
    op: str | None


def _coremltools() -> Any:
    try:
        import coremltools
    except ImportError as exc:
        raise ExportError(
            "coreml", "coremltools is not installed (pip install latbench[export])"
        ) from exc
    return coremltools


def capture_trace(model: torch.nn.Module, example: torch.Tensor) -> Any:
    with torch.no_grad():
        return torch.jit.trace(model, example)


CAPTURES: tuple[tuple[str, Callable[[torch.nn.Module, torch.Tensor], Any]], ...] = (
    ("torch.export", coreml_ready),
    ("jit.trace", capture_trace),
)


@contextlib.contextmanager
def _quiet_conversion() -> Iterator[list[logging.LogRecord]]:
    """Silence progress bars and warnings; keep coremltools' ERROR records, the only place that
    names the op a TorchScript conversion died in."""
    log, logger = logging.handlers.BufferingHandler(10_000), logging.getLogger("coremltools")
    log.setLevel(logging.ERROR)
    logger.addHandler(log)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield log.buffer
    finally:
        logger.removeHandler(log)


def failing_op(text: str) -> str | None:
    """The op an error message (or coremltools' log line) names, when it names one."""
    return named_op(_OP_PATTERNS, text)


def _failure(path: str, exc: Exception, records: list[logging.LogRecord]) -> Failure:
    first = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:400]
    logged = " ".join(record.getMessage() for record in records)
    location = _LOCATION.search(logged)
    where = f" (at {location.group(1)})" if location and location.group(1) else ""
    return Failure(path, first + where, failing_op(logged) or failing_op(str(exc)))


def convert(
    label: str,
    capture: Callable[[torch.nn.Module, torch.Tensor], Any],
    model: torch.nn.Module,
    example: torch.Tensor,
    precision: Precision,
    target: str = DEPLOYMENT_TARGET,
) -> Any:
    """One capture path to an in-memory ML program; returns why it failed instead of raising."""
    ct = _coremltools()
    with _quiet_conversion() as records:
        try:
            return ct.convert(
                capture(model, example),
                inputs=[ct.TensorType(name=INPUT_NAME, shape=tuple(example.shape))],
                outputs=[ct.TensorType(name=OUTPUT_NAME)],
                convert_to="mlprogram",
                minimum_deployment_target=getattr(ct.target, target),
                compute_precision=getattr(ct.precision, COMPUTE_PRECISION[precision]),
            )
        except Exception as exc:  # noqa: BLE001 - torch and coremltools raise anything
            return _failure(label, exc, records)


def convert_and_save(
    label: str,
    capture: Callable[[torch.nn.Module, torch.Tensor], Any],
    model: torch.nn.Module,
    example: torch.Tensor,
    precision: Precision,
    dest: Path,
) -> Failure | None:
    """One capture path end to end; returns why it failed instead of raising."""
    converted = convert(label, capture, model, example, precision)
    if isinstance(converted, Failure):
        return converted
    try:
        converted.save(str(dest))
    except Exception as exc:  # noqa: BLE001 - coremltools raises anything
        shutil.rmtree(dest, ignore_errors=True)  # the next path writes the same place
        return _failure(label, exc, [])
    return None


def inspect_package(path: Path) -> dict[str, Any]:
    """What the saved package declares, read from its spec alone (works without a runtime)."""
    ct = _coremltools()
    from coremltools.proto import FeatureTypes_pb2, MIL_pb2

    spec = ct.utils.load_spec(str(path))
    array_dtype = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name

    def features(items: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": f.name,
                "shape": list(f.type.multiArrayType.shape),
                "dtype": array_dtype(f.type.multiArrayType.dataType).lower(),
            }
            for f in items
        ]

    main = spec.mlProgram.functions["main"]
    ops: Counter[str] = Counter()
    dtypes: Counter[str] = Counter()

    def walk(block: Any) -> None:
        for op in block.operations:
            ops[op.type] += 1
            if op.type not in {"const", "cast"}:
                for out in op.outputs:
                    dtypes[MIL_pb2.DataType.Name(out.type.tensorType.dataType).lower()] += 1
            for inner in op.blocks:
                walk(inner)

    for block in main.block_specializations.values():
        walk(block)
    floats = {d for d in dtypes if d in {"float16", "float32"}}
    return {
        "inputs": features(spec.description.input),
        "outputs": features(spec.description.output),
        "deployment_target": ct.target(spec.specificationVersion).name,
        "mil_opset": main.opset,
        "compute_precision": "fp16" if floats == {"float16"} else "fp32" if floats else "none",
        "compute_dtypes": dict(dtypes.most_common()),
        "ops": sum(n for op, n in ops.items() if op != "const"),
        "op_histogram": dict(ops.most_common()),
    }


def _verify(checks: dict[str, Any], example: torch.Tensor, want: np.ndarray, p: Precision) -> None:
    """The package must declare what was asked for; anything else is a converter bug."""

    def named_shapes(features: list[dict[str, Any]]) -> list[tuple[str, list[int]]]:
        return [(f["name"], f["shape"]) for f in features]

    for key, found, expected in (
        ("inputs", named_shapes(checks["inputs"]), [(INPUT_NAME, list(example.shape))]),
        ("outputs", named_shapes(checks["outputs"]), [(OUTPUT_NAME, list(want.shape))]),
        ("deployment_target", checks["deployment_target"], DEPLOYMENT_TARGET),
        ("compute_precision", checks["compute_precision"], p.value),
    ):
        if found != expected:
            raise ExportError("coreml", f"saved package has {key} {found}, expected {expected}")


def coreml_parity(
    path: Path, example: torch.Tensor, want: np.ndarray, precision: Precision
) -> dict[str, Any]:
    """Predict with the Core ML runtime (macOS only) and compare with PyTorch."""
    ct = _coremltools()
    model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
    got = np.asarray(model.predict({INPUT_NAME: example.numpy()})[OUTPUT_NAME], dtype=np.float64)
    rel = relative_error(want, got)
    parity = {
        "runtime": f"Core ML via coremltools {ct.__version__}, compute units ALL",
        "max_abs_error": float(np.max(np.abs(want.astype(np.float64) - got))),
        "rel_error": rel,
        "tolerance": PARITY_TOLERANCE[precision],
        "ok": rel <= PARITY_TOLERANCE[precision],
    }
    if precision is Precision.FP16 and (
        float(np.max(np.abs(want))) > FP16_MAX or not np.all(np.isfinite(got))
    ):  # e.g. mobileone_s0: random-weight activations reach 1e16
        parity["note"] = "activations exceed the fp16 range (random weights): not comparable"
    return parity


@register_exporter(ExportFormat.COREML)
def export_coreml(
    model: torch.nn.Module, example: torch.Tensor, precision: Precision, dest: Path
) -> ExportResult:
    with torch.no_grad():
        want = model(example).numpy()
    failures: list[Failure] = []
    for label, capture in CAPTURES:
        failure = convert_and_save(label, capture, model, example, precision, dest)
        if failure is not None:
            failures.append(failure)
            continue
        checks = inspect_package(dest)
        _verify(checks, example, want, precision)
        checks["fallback_reasons"] = [f"{f.path}: {f.message}" for f in failures]
        parity = None
        if sys.platform == "darwin":
            parity = coreml_parity(dest, example, want, precision)
            if not parity["ok"] and "note" not in parity:
                raise ExportError(
                    "coreml",
                    f"Core ML output differs from PyTorch: relative error "
                    f"{parity['rel_error']:.3g} > {parity['tolerance']}",
                )
        else:
            checks["parity"] = NO_RUNTIME
        return ExportResult(path=dest, export_path=label, parity=parity, checks=checks)
    raise ExportError(
        "coreml",
        "; ".join(f"{f.path}: {f.message}" for f in failures),
        op=next((f.op for f in failures if f.op), None),
    )
