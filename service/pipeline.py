"""The server-side chain: request → plan (spec, targets) → request key → artifact. The device side
(artifact → measurement) is ``devices.jobs.profile.measure``.

Plain functions with typed input and output; the job service, the dispatchers, the CLI and the
bench scripts call them and never re-implement a step. Heavy imports (torch through
``exporters.export``) happen inside the functions, so the API process loads torch only when it
first resolves a model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devices.jobs.lock import host_lock
from devices.settings import MeasureSettings
from exporters.errors import SpecError
from exporters.formats import DeviceClass, ExportFormat, Precision
from exporters.spec import ModelSpec, parse_spec

if TYPE_CHECKING:  # torch: imported only where a budget is checked or a model exported
    from exporters.budget import WorkBudget
    from exporters.export import Buildable, ExportReport
    from exporters.sources import Sourced


@dataclass(frozen=True)
class Target:
    """One (device class, artifact format, precision) a request asks to measure on."""

    device_class: DeviceClass
    format: ExportFormat
    precision: str


@dataclass(frozen=True)
class Plan:
    spec: ModelSpec
    spec_hash: str
    family: str | None
    targets: tuple[Target, ...]

    @property
    def model(self) -> str:
        return self.spec.model


@dataclass(frozen=True)
class Upload:
    """A side that is an uploaded artifact: measured as given (never built), so its jobs are
    created exported; ``spec_hash`` is the upload's content hash, its spec row says so."""

    key: str
    spec_hash: str
    model: str
    targets: tuple[Target, ...]


def plan(
    model: str | dict[str, Any],
    devices: list[DeviceClass],
    formats: list[ExportFormat] | None,
    *,
    budget: WorkBudget | None = None,
) -> Plan:
    """Validate a request against the zoo without building anything (fails fast, names fields);
    with a ``budget`` (the service's), a spec whose estimated size exceeds it is refused too."""
    from exporters.zoo.registry import resolve

    spec = parse_spec(model)
    resolved = resolve(spec)
    if budget is not None:
        from exporters.budget import check

        check(resolved, budget)
    targets = []
    for device in devices:
        usable = [f for f in device.formats if formats is None or f in formats]
        if not usable:
            raise SpecError(
                f"device {device.value!r} runs {[f.value for f in device.formats]}, "
                f"none of the requested formats",
                field="formats",
            )
        fmt = usable[0]
        targets.append(Target(device, fmt, spec.require_precision(fmt).value))
    return Plan(
        spec=spec,
        spec_hash=spec.content_hash(),
        family=resolved.entry.family,
        targets=tuple(targets),
    )


def request_key(*, spec_hash: str, target: Target, settings: MeasureSettings) -> str:
    """Identity of a measurement request: equal keys are interchangeable results."""
    payload = [
        spec_hash,
        target.device_class.value,
        target.format.value,
        target.precision,
        settings.model_dump(mode="json"),
    ]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def compare_key(*, baseline: str, candidate: str) -> str:
    """Identity of a comparison from its two sides' request keys (which already hold the device,
    format, precision and settings): the order matters, B/A is not A/B."""
    payload = ["compare", baseline, candidate]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def predict_key(*, spec_hash: str, device_class: DeviceClass, allow_out_of_domain: bool) -> str:
    """Identity of a prediction request: never equal to a measurement's ``request_key``. The
    out-of-domain flag is part of it because it changes the answer: with it a graph of unseen
    op types gets a number, without it the same request abstains, so a done answer given under
    the flag must never be reused for a request that did not ask for one."""
    payload = [
        "predict",
        spec_hash,
        device_class.value,
        {"allow_out_of_domain": allow_out_of_domain},
    ]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def export(
    spec: ModelSpec | Buildable,
    formats: tuple[ExportFormat, ...] | None,
    *,
    store_root: Path,
    lock_path: Path,
    progress: Callable[[str, int, int], None] | None = None,
) -> ExportReport:
    """Export (or find cached) ``formats`` of ``spec`` (None: the spec's own list) under the
    shared host lock; take an
    artifact out of the report with ``report.require(fmt)``, which fails with its error."""
    from exporters.artifacts import ArtifactStore
    from exporters.export import export_model

    with host_lock(lock_path, exclusive=False):
        return export_model(
            spec, store=ArtifactStore(store_root), formats=formats, progress=progress
        )


def materialize(
    ref: str | dict[str, Any],
    fmt: ExportFormat,
    *,
    store_root: Path,
    lock_path: Path,
    precision: Precision | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Sourced:
    """Any CLI reference (zoo name, spec, ``python:`` factory, ready artifact) to one stored
    artifact of ``fmt``, built through ``export`` above (cache, shared host lock) like a job."""
    from exporters.artifacts import ArtifactStore
    from exporters.sources import materialize as from_source

    def locked(
        source: ModelSpec | Buildable, *, store: ArtifactStore, formats, progress
    ) -> ExportReport:
        return export(
            source, formats, store_root=store.root, lock_path=lock_path, progress=progress
        )

    return from_source(
        ref,
        store=ArtifactStore(store_root),
        fmt=fmt,
        precision=precision,
        progress=progress,
        export=locked,
    )
