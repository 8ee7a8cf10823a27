"""spec → artifacts: build, reparameterize (proven), analyse, export each requested format.

Artifacts already in the store are cache hits: when every requested one exists, nothing is
built. One format failing does not lose the others; its error is reported in its entry.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from exporters.artifacts import Artifact, ArtifactStore, artifact_key, artifact_size_bytes
from exporters.errors import ArtifactUnavailableError, ExportError, LatbenchError, SpecError
from exporters.exporter import get_exporter
from exporters.formats import ExportFormat, Precision
from exporters.spec import ModelSpec, library_versions
from exporters.zoo import registry

Progress = Callable[[str, int, int], None]  # (step description, steps done, steps in all)


@dataclass(frozen=True)
class Buildable:
    """What export needs of a model source: a zoo spec or a user's ``python:`` factory. The
    content hash keys the artifacts, so it must change whenever the built graph does."""

    model: str
    family: str
    content_hash: str
    input_shape: tuple[int, ...]
    build: Callable[[], Any]  # the train-form nn.Module, eval mode, random weights
    description: dict[str, Any]  # stored as the artifact's "spec"
    formats: tuple[ExportFormat, ...]
    precision: Precision | None = None
    calibration: str | None = None  # a stored calibration set's id (int8); None: synthetic

    def precision_for(self, fmt: ExportFormat) -> Precision:
        return fmt.default_precision(self.precision)


def from_spec(spec: ModelSpec) -> Buildable:
    """A zoo spec as a Buildable; every input check happens here, before any torch work."""
    resolved = registry.resolve(spec)
    return Buildable(
        model=spec.model,
        family=resolved.entry.family,
        content_hash=spec.content_hash(),
        input_shape=resolved.input.shape,
        build=lambda: registry.build(resolved),
        description=spec.model_dump(mode="json"),
        formats=spec.formats,
        precision=spec.precision,
        calibration=spec.calibration,
    )


@dataclass
class ArtifactReport:
    format: str
    precision: str
    ok: bool
    key: str
    path: str | None = None
    error: str | None = None
    parity: dict[str, Any] | None = None
    export_seconds: float | None = None
    export_path: str | None = None
    size_bytes: int | None = None
    cached: bool = False
    checks: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] | None = None  # quantized forms: what ran in int8, calibration

    @classmethod
    def from_artifact(cls, artifact: Artifact, *, cached: bool) -> ArtifactReport:
        meta = artifact.meta
        return cls(
            format=artifact.format.value,
            precision=artifact.precision.value,
            ok=True,
            key=artifact.key,
            path=str(artifact.path),
            parity=meta.get("parity"),
            export_seconds=meta.get("export_seconds"),
            export_path=meta.get("export_path"),
            size_bytes=meta.get("size_bytes"),
            cached=cached,
            checks=meta.get("checks", {}),
            quantization=meta.get("quantization"),
        )


@dataclass
class ExportReport:
    model: str
    family: str
    spec_hash: str
    input_shape: list[int]
    weights: str = registry.WEIGHTS
    params: int | None = None
    macs: int | None = None
    reparam: dict[str, Any] | None = None
    artifacts: list[ArtifactReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.artifacts)

    def artifact(self, fmt: ExportFormat) -> ArtifactReport | None:
        return next((a for a in self.artifacts if a.format == fmt.value), None)

    def require(self, fmt: ExportFormat) -> ArtifactReport:
        """The exported artifact of ``fmt``; ArtifactUnavailableError with the export's error."""
        entry = self.artifact(fmt)
        if entry is None or not entry.ok or entry.path is None:
            message = entry.error if entry and entry.error else "no artifact produced"
            raise ArtifactUnavailableError(fmt.value, message)
        return entry

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def export_model(
    spec: ModelSpec | Buildable,
    *,
    store: ArtifactStore,
    formats: tuple[ExportFormat, ...] | None = None,
    progress: Progress | None = None,
) -> ExportReport:
    """Export ``spec`` to every requested format (default: the spec's own list)."""
    source = spec if isinstance(spec, Buildable) else from_spec(spec)
    spec_hash = source.content_hash
    wanted = formats or source.formats
    keys = {fmt: artifact_key(spec_hash, fmt, source.precision_for(fmt)) for fmt in wanted}
    cached = {fmt: store.get(key) for fmt, key in keys.items()}
    report = ExportReport(
        model=source.model,
        family=source.family,
        spec_hash=spec_hash,
        input_shape=list(source.input_shape),
    )
    unsupported = {fmt for fmt in wanted if fmt.precision_error(source.precision) is not None}
    missing = [f for f, artifact in cached.items() if artifact is None and f not in unsupported]
    total = (3 if missing else 0) + len(missing)
    step = _stepper(progress, total)
    if missing:
        deploy, example, cost, equivalence = _deploy_form(source, step)
        report.params, report.macs = cost.params, cost.macs
        report.reparam = equivalence.to_dict()
    for fmt in wanted:
        if fmt in unsupported:
            report.artifacts.append(_unsupported(fmt, source, keys[fmt]))
            continue
        artifact = cached[fmt]
        if artifact is not None:
            report.artifacts.append(ArtifactReport.from_artifact(artifact, cached=True))
            _fill_model_fields(report, artifact.meta)
            continue
        step(f"exporting {fmt.value}")
        report.artifacts.append(
            _export_one(source, fmt, keys[fmt], deploy, example, report, cost, store)
        )
    return report


def _deploy_form(source: Buildable, step: Callable[[str], None]) -> tuple:
    """Build, reparameterize (proven) and analyse. A model that cannot run at the requested
    input (a stride or attention grid that does not fit) fails inside torch with a bare
    RuntimeError: it becomes a SpecError naming the input, not a traceback."""
    import torch

    from exporters.analysis import analyse
    from exporters.reparam import deploy_form

    shape = source.input_shape
    try:
        step(f"building {source.model} (random weights)")
        train = source.build()
        step("reparameterizing and proving equivalence")
        deploy, equivalence = deploy_form(train, shape)
        step("counting parameters and MACs")
        example = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        return deploy, example, analyse(deploy, example), equivalence
    except LatbenchError:
        raise
    except (RuntimeError, ValueError, IndexError, AssertionError) as exc:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        raise SpecError(
            f"{source.model} cannot run on input {list(shape)}: {message}", field="input"
        ) from exc


def _stepper(progress: Progress | None, total: int) -> Callable[[str], None]:
    done = 0

    def step(description: str) -> None:
        nonlocal done
        if progress is not None:
            progress(description, done, total)
        done += 1

    return step


def _judge_parity(parity: dict[str, Any], reparam: dict[str, Any]) -> dict[str, Any]:
    """A runtime may differ from PyTorch by the float32 rounding this network amplifies: random
    deep nets turn 1e-7 rounding into 1e-3 differences between two correct float32 evaluations.
    The reparameterization step measured PyTorch's own float32 distance from the exact value
    (``fp32_rel_error``); another runtime's kernels may land up to 100× farther. A wrong export
    is off by O(1)."""
    if "note" in parity:  # the exporter already explained why the figure is not comparable
        return parity
    amplified = 100 * (reparam.get("fp32_rel_error") or 0.0)
    tolerance = max(parity["tolerance"], amplified)
    return {**parity, "tolerance": tolerance, "ok": parity["rel_error"] <= tolerance}


def _unsupported(fmt: ExportFormat, spec: Buildable, key: str) -> ArtifactReport:
    precision = spec.precision_for(fmt)
    error = fmt.precision_error(spec.precision)
    return ArtifactReport(fmt.value, precision.value, ok=False, key=key, error=str(error))


def _fill_model_fields(report: ExportReport, meta: dict[str, Any]) -> None:
    report.params = report.params or meta.get("params")
    report.macs = report.macs or meta.get("macs")
    report.reparam = report.reparam or meta.get("reparam")


def _quantize(
    spec: Buildable,
    fmt: ExportFormat,
    precision: Precision,
    deploy: Any,
    float_path: Any,
    dest: Any,
    store: ArtifactStore,
) -> dict[str, Any]:
    """The quantized form of the checked float artifact, calibrated on the spec's set (or
    synthetic inputs); the float form is removed once quantized (it is not the artifact)."""
    import shutil

    from exporters.calibration import CalibrationStore, synthetic
    from exporters.quantize import quantize

    shape = tuple(spec.input_shape)
    calibration = (
        CalibrationStore(store.root).calibration(spec.calibration, shape)
        if precision.calibrated
        else synthetic(shape)
    )
    try:
        return quantize(fmt, precision, deploy, float_path, dest, calibration)
    finally:
        if float_path.is_dir():
            shutil.rmtree(float_path, ignore_errors=True)
        else:
            float_path.unlink(missing_ok=True)


def _export_one(
    spec: Buildable,
    fmt: ExportFormat,
    key: str,
    deploy: Any,
    example: Any,
    report: ExportReport,
    cost: Any,
    store: ArtifactStore,
) -> ArtifactReport:
    precision = spec.precision_for(fmt)
    started = time.perf_counter()
    quantization: dict[str, Any] | None = None

    def produce(path: Any) -> dict[str, Any]:
        nonlocal quantization
        if precision.quantized:
            from exporters.quantize import base_precision

            float_path = path.with_name(f"float{fmt.suffix}")
            result = get_exporter(fmt)(deploy, example, base_precision(fmt), float_path)
        else:
            result = get_exporter(fmt)(deploy, example, precision, path)
        if result.parity is not None:
            result.parity = _judge_parity(result.parity, report.reparam or {})
            if not result.parity["ok"]:
                raise ExportError(
                    fmt.value,
                    f"{result.parity['runtime']} output differs from PyTorch: relative error "
                    f"{result.parity['rel_error']:.3g} > {result.parity['tolerance']:.3g}",
                )
        if precision.quantized:  # parity and checks are the float form's, checked before
            quantization = _quantize(spec, fmt, precision, deploy, result.path, path, store)
            result.path = path
            result.checks["checked_form"] = "float, before quantization (see quantization)"
        return {
            "spec": spec.description,
            "spec_hash": report.spec_hash,
            "model": spec.model,
            "family": report.family,
            "input_shape": report.input_shape,
            "weights": registry.WEIGHTS,
            "versions": {**library_versions(), "python": platform.python_version()},
            "reparam": report.reparam,
            "params": cost.params,
            "macs": cost.macs,
            "module_histogram": cost.module_histogram,
            "parity": result.parity,
            "checks": result.checks,
            "quantization": quantization,
            "export_path": result.export_path,
            "export_seconds": round(time.perf_counter() - started, 3),
            "size_bytes": artifact_size_bytes(result.path),
            "created_at": datetime.now(UTC).isoformat(),
        }

    try:
        artifact = store.put(key, produce)
    except LatbenchError as exc:
        return ArtifactReport(fmt.value, precision.value, ok=False, key=key, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - an exporter bug must not lose the other formats
        error = ExportError(fmt.value, f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
        return ArtifactReport(fmt.value, precision.value, ok=False, key=key, error=str(error))
    return ArtifactReport.from_artifact(artifact, cached=False)
