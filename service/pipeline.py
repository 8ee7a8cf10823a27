"""The one place that knows the whole chain: request → spec → artifact → measurement.

Plain functions with typed input and output; the API, the dispatchers and the runner agent call
them and never re-implement a step. Heavy imports (torch through ``exporters.export``, runtimes
through ``devices``) happen inside the functions, so a device host imports this module without
torch and the API process loads torch only when it first resolves a model.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.settings import MeasureSettings
from exporters.errors import RunnerUnavailableError, SpecError
from exporters.formats import DeviceClass, ExportFormat
from exporters.spec import ModelSpec, parse_spec


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


def plan(
    model: str | dict[str, Any], devices: list[DeviceClass], formats: list[ExportFormat] | None
) -> Plan:
    """Validate a request against the zoo without building anything (fails fast, names fields)."""
    from exporters.zoo.registry import resolve

    spec = parse_spec(model)
    resolved = resolve(spec)
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
        targets.append(Target(device, fmt, spec.precision_for(fmt).value))
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


@contextmanager
def host_lock(path: Path, *, exclusive: bool) -> Iterator[None]:
    """Host-wide reader/writer lock: exports hold it shared, a measurement exclusively, so no
    export runs on a host while a measurement owns it (across processes, not just threads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def export(
    spec: ModelSpec, fmt: ExportFormat, *, store_root: Path, lock_path: Path
) -> dict[str, Any]:
    """Export (or find cached) one format of ``spec``; the ``ExportReport`` as a dict."""
    from exporters.artifacts import ArtifactStore
    from exporters.export import export_model

    with host_lock(lock_path, exclusive=False):
        report = export_model(spec, store=ArtifactStore(store_root), formats=[fmt])
    return report.to_dict()


def runner_name(device_class: DeviceClass, fmt: ExportFormat) -> str:
    """The available runner of ``device_class`` that executes ``fmt`` on this host."""
    from devices.runner import get_runner, runner_class, runners_for

    names = [n for n in runners_for(device_class) if fmt in runner_class(n).formats]
    for name in names:
        if runner_class(name).unavailable_reason() is None:
            return name
    if names:
        get_runner(names[0])  # raises RunnerUnavailableError with the runner's own reason
    raise RunnerUnavailableError(f"no runner for {fmt.value} artifacts on {device_class.value}")


def measure(
    artifact: Path,
    *,
    device_class: DeviceClass,
    fmt: ExportFormat,
    settings: MeasureSettings,
    lock_path: Path,
) -> dict[str, Any]:
    """Measure one artifact on this host with the runner for its class; the Measurement as a dict
    (its ``host_load`` records what else the host did meanwhile)."""
    from devices.runner import get_runner

    runner = get_runner(runner_name(device_class, fmt))
    with host_lock(lock_path, exclusive=True):
        return runner.measure(artifact, settings).to_dict()
