"""Artifacts for the measurement benchmarks: every model goes through latbench's own export
(random weights, reparameterized, content-addressed, cached under LATBENCH_DATA_DIR)."""

from __future__ import annotations

from pathlib import Path

from exporters.artifacts import ArtifactStore
from exporters.errors import ExportError
from service.cli import data_dir
from exporters.export import export_model
from exporters.formats import ExportFormat
from exporters.spec import InputSpec, ModelSpec


def store() -> ArtifactStore:
    return ArtifactStore(data_dir())


def artifacts(
    model: str, formats: tuple[ExportFormat, ...], side: int | None = None
) -> dict[ExportFormat, Path]:
    """Paths of ``model``'s artifacts (exported on first use, one build for all formats)."""
    size = {"input": InputSpec(height=side, width=side)} if side else {}
    report = export_model(ModelSpec(model=model, formats=formats, **size), store=store())
    paths = {}
    for fmt in formats:
        entry = report.artifact(fmt)
        if entry is None or not entry.ok or entry.path is None:
            raise ExportError(fmt.value, f"{model}: {entry.error if entry else 'nothing exported'}")
        paths[fmt] = Path(entry.path)
    return paths


def artifact(model: str) -> Path:
    """``model``'s ONNX artifact at its default input size."""
    return artifacts(model, (ExportFormat.ONNX,))[ExportFormat.ONNX]
