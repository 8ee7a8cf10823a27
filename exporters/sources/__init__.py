"""Model sources behind one interface (the CLI's REF): a zoo name, a spec file, a
``python:package.module:factory`` (or a spec file whose ``model`` is one), or a ready artifact
(``.onnx``, ``.pt2``, ``.mlpackage``).

``materialize(ref, ...)`` turns any of them into one artifact in the content-addressed store: the
built sources through ``export_model`` (deploy switch, Conv+BN fold, equivalence proof, export),
a ready artifact through validation only, and says which in every output. This runs the user's
code for ``python:`` sources, so the API never calls it: the network takes zoo specs and uploads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.artifacts import Artifact, ArtifactStore
from exporters.errors import SpecError
from exporters.export import Buildable, ExportReport, Progress, export_model
from exporters.formats import ExportFormat, Precision
from exporters.sources.ready import SUFFIXES, ingest, reparam_summary
from exporters.spec import PYTHON_SOURCE, SPEC_SUFFIXES, ModelSpec, parse_spec, read_spec_file


@dataclass(frozen=True)
class Sourced:
    """One REF as a stored artifact, and how it got there."""

    ref: str
    model: str
    artifact: Artifact
    built: bool  # False: a ready artifact, measured as given
    cached: bool
    reparam: dict[str, Any] | None

    @property
    def reparam_summary(self) -> dict[str, Any]:
        return reparam_summary(self.reparam, built=self.built)

    @property
    def reparam_note(self) -> str:
        return self.reparam_summary["note"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "model": self.model,
            "artifact_key": self.artifact.key,
            "format": self.artifact.format.value,
            "precision": self.artifact.precision.value,
            "built": self.built,
            "cached": self.cached,
            "reparam": self.reparam_summary,
        }


def buildable(ref: str | dict[str, Any]) -> ModelSpec | Buildable:
    """A zoo name, spec (file or document) or python: factory, ready for ``export_model``."""
    data: Any = ref
    if isinstance(ref, str) and Path(ref).suffix in SPEC_SUFFIXES:
        path = Path(ref)
        if not path.is_file():
            raise SpecError(f"spec file {ref!r} does not exist", field="spec")
        data = read_spec_file(path)
    model = data if isinstance(data, str) else (data or {}).get("model", "")
    if isinstance(model, str) and model.startswith(PYTHON_SOURCE):
        from exporters.sources.python import parse_python_spec, python_buildable

        return python_buildable(parse_python_spec(data))
    return parse_spec(data)


def with_precision(
    source: ModelSpec | Buildable, precision: Precision | None
) -> ModelSpec | Buildable:
    if precision is None:
        return source
    if isinstance(source, Buildable):
        return dataclasses.replace(source, precision=precision)
    return source.model_copy(update={"precision": precision})


def materialize(
    ref: str | dict[str, Any],
    *,
    store: ArtifactStore,
    fmt: ExportFormat,
    precision: Precision | None = None,
    progress: Progress | None = None,
    export: Callable[..., ExportReport] = export_model,
) -> Sourced:
    """REF -> one artifact of format ``fmt`` in ``store`` (built and proven, or validated).
    ``export`` is the build step (``export_model``'s signature); the service passes its own,
    which holds the host lock, so the CLI and the server build the same way."""
    label = ref if isinstance(ref, str) else str(ref.get("model", "spec"))
    if isinstance(ref, str) and Path(ref).suffix in SUFFIXES:
        path = Path(ref)
        if not path.exists():
            raise SpecError(f"artifact {ref!r} does not exist", field="artifact")
        done = ingest(store, path, label=path.name)
        if done.artifact.format is not fmt:
            raise SpecError(
                f"{path.name} is {done.artifact.format.value}; this device runs {fmt.value}",
                field="artifact",
            )
        return Sourced(label, path.name, done.artifact, False, done.cached, None)
    source = with_precision(buildable(ref), precision)
    report = export(source, store=store, formats=(fmt,), progress=progress)
    entry = report.require(fmt)
    return Sourced(
        label, report.model, store.require(entry.key), True, entry.cached, report.reparam
    )
