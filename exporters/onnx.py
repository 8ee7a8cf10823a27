"""ONNX exporter: torch.onnx (``torch.export``-based, the maintained path) with the TorchScript
exporter as fallback, then ``onnx.checker`` and parity against PyTorch in onnxruntime."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exporters.errors import ExportError
from exporters.exporter import ExportResult, named_op, register_exporter, relative_error
from exporters.formats import ExportFormat, Precision

OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "output"
PARITY_TOLERANCE = 1e-4  # relative; raised for nets that amplify fp32 rounding (see export.py)


def _export(model: torch.nn.Module, example: torch.Tensor, dest: Path, *, dynamo: bool) -> None:
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(dest),
            dynamo=dynamo,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            external_data=False,
            **({"verbose": False} if dynamo else {}),
        )


# how torch.onnx's error messages name the ATen / ONNX op they failed on
_OP_PATTERNS = (r"aten::?\.?([A-Za-z_0-9.]+)", r"operator '?([A-Za-z_:.0-9]+)'?", r"op '([^']+)'")


def onnx_parity(path: Path, model: torch.nn.Module, example: torch.Tensor) -> dict[str, Any]:
    """Run the saved graph in onnxruntime (CPU) and compare with PyTorch."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: example.numpy()})[0]
    with torch.no_grad():
        want = model(example).numpy()
    rel = relative_error(want, got)
    return {
        "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider",
        "max_abs_error": float(np.max(np.abs(want.astype(np.float64) - got))),
        "rel_error": rel,
        "tolerance": PARITY_TOLERANCE,
        "ok": rel <= PARITY_TOLERANCE,
    }


@register_exporter(ExportFormat.ONNX)
def export_onnx(
    model: torch.nn.Module, example: torch.Tensor, precision: Precision, dest: Path
) -> ExportResult:
    import onnx

    errors: list[str] = []
    for dynamo, label in ((True, "torch.export (dynamo)"), (False, "jit.trace (torchscript)")):
        try:
            _export(model, example, dest, dynamo=dynamo)
            break
        except Exception as exc:  # noqa: BLE001 - both paths fail in many library-specific ways
            errors.append(f"{label}: {exc}".splitlines()[0][:500])
            dest.unlink(missing_ok=True)
    else:
        raise ExportError("onnx", "; ".join(errors), op=named_op(_OP_PATTERNS, " ".join(errors)))
    try:
        onnx.checker.check_model(str(dest), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError("onnx", f"onnx.checker rejected the graph: {exc}") from exc
    parity = onnx_parity(dest, model, example)  # judged by the caller, who knows the model
    graph = onnx.load(str(dest), load_external_data=False).graph
    ops: dict[str, int] = {}
    for node in graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return ExportResult(
        path=dest,
        export_path=label,
        parity=parity,
        checks={
            "opset": OPSET,
            "checker": "passed",
            "fallback_reasons": errors,
            "nodes": len(graph.node),
            "op_histogram": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
        },
    )
