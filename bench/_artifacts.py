"""Artifacts for the measurement benchmarks: every model goes through latbench's own export
(random weights, reparameterized, content-addressed, cached under LATBENCH_DATA_DIR)."""

from __future__ import annotations

from pathlib import Path

from exporters.formats import ExportFormat
from exporters.spec import InputSpec, ModelSpec
from service import pipeline
from service.cli import data_dir, host_lock_path


def artifacts(
    model: str, formats: tuple[ExportFormat, ...], side: int | None = None
) -> dict[ExportFormat, Path]:
    """Paths of ``model``'s artifacts (exported on first use, one build for all formats)."""
    size = {"input": InputSpec(height=side, width=side)} if side else {}
    spec = ModelSpec(model=model, formats=formats, **size)
    report = pipeline.export(spec, formats, store_root=data_dir(), lock_path=host_lock_path())
    return {fmt: Path(report.require(fmt).path) for fmt in formats}


def artifact(model: str) -> Path:
    """``model``'s ONNX artifact at its default input size."""
    return artifacts(model, (ExportFormat.ONNX,))[ExportFormat.ONNX]
