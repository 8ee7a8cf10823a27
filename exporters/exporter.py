"""Exporter registry keyed by format: a new format is one module and one ``@register_exporter``.

Every exporter has the same signature: it takes the deploy-form module (eval mode, float32), an
example input and the precision, writes exactly one artifact at ``dest`` (a path inside a scratch
directory the artifact store owns, so a failure leaves nothing behind) and returns what it checked.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporters.formats import ExportFormat, Precision


@dataclass
class ExportResult:
    path: Path
    export_path: str  # how the artifact was produced, e.g. "torch.export" or "jit.trace"
    parity: dict[str, Any] | None = None  # max_abs_error, rel_error, tolerance, ok, runtime
    checks: dict[str, Any] = field(default_factory=dict)  # format-specific validation results


Exporter = Callable[[Any, Any, Precision, Path], ExportResult]

_EXPORTERS: dict[ExportFormat, Exporter] = {}
_MODULES = {
    ExportFormat.ONNX: "exporters.onnx",
    ExportFormat.COREML: "exporters.coreml",
    ExportFormat.TORCH_EXPORT: "exporters.torch_export",
}


def register_exporter(fmt: ExportFormat) -> Callable[[Exporter], Exporter]:
    def decorate(fn: Exporter) -> Exporter:
        if fmt in _EXPORTERS:
            raise ValueError(f"an exporter for {fmt.value} is already registered")
        _EXPORTERS[fmt] = fn
        return fn

    return decorate


def get_exporter(fmt: ExportFormat) -> Exporter:
    """Imports the exporter's module on first use, so torch/coremltools load only when needed."""
    if fmt not in _EXPORTERS:
        importlib.import_module(_MODULES[fmt])
    return _EXPORTERS[fmt]


def named_op(patterns: tuple[str, ...], message: str) -> str | None:
    """The op a converter's error message names (first group of the first pattern that matches):
    users get the op to look up, not a stack trace."""
    import re

    for pattern in patterns:
        found = re.search(pattern, message)
        if found:
            return found.group(1)
    return None


def relative_error(reference: Any, candidate: Any) -> float:
    """‖a−b‖/‖a‖: absolute error means nothing on untrained nets whose outputs reach 1e9."""
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64).ravel()
    cand = np.asarray(candidate, dtype=np.float64).ravel()
    denom = float(np.linalg.norm(ref))
    diff = float(np.linalg.norm(ref - cand))
    return diff / denom if denom > 0 else diff
