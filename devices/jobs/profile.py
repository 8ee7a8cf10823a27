"""The ``profile`` job kind: measure one artifact on this host with the runner for its device
class. ``measure`` is also what the CLI and the bench scripts call, so a measurement is taken the
same way everywhere (runner chosen by device class, in a bounded child process holding the host
lock exclusively: ``devices.jobs.bounded``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from devices.jobs.bounded import Limits, run_bounded
from devices.jobs.kinds import register_kind
from devices.jobs.port import MODEL, Host, JobTask
from devices.results import Measurement, MeasurementRecord
from devices.settings import MeasureSettings, parse_settings
from exporters.errors import RunnerUnavailableError, SpecError
from exporters.formats import DeviceClass, ExportFormat


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


def choose_runner(
    device_class: DeviceClass | None, runner: str | None = None
) -> tuple[str, ExportFormat]:
    """The runner to measure on and the artifact format it takes: by device class, the first
    available runner of the class in the class's format order (as the service picks); by name
    only when ``runner`` is given (its class must then match ``device_class``, where given)."""
    from devices.runner import get_runner, runner_class

    if runner is not None:
        chosen = runner_class(runner)
        if device_class is not None and chosen.device_class is not device_class:
            raise SpecError(
                f"runner {chosen.name!r} measures {chosen.device_class.value}, "
                f"not {device_class.value}",
                field="runner",
            )
        get_runner(chosen.name)  # raises RunnerUnavailableError with the runner's reason
        return chosen.name, chosen.formats[0]
    device_class = device_class or DeviceClass.of_this_cpu()
    errors = []
    for fmt in device_class.formats:
        try:
            return runner_name(device_class, fmt), fmt
        except RunnerUnavailableError as exc:
            errors.append(exc)
    raise errors[0]


def measure(
    artifact: Path,
    *,
    runner: str,
    settings: MeasureSettings,
    lock_path: Path,
    progress: Callable[[str, int, float], None] | None = None,
    layers: bool = False,
    limits: Limits | None = None,
) -> Measurement:
    """Measure one artifact on this host with runner ``runner`` in a child process bounded by
    ``limits`` (default: from the environment) under the exclusive host lock (its ``host_load``
    records what else the host did meanwhile); ``layers`` adds the per-layer breakdown, taken
    after the plain measurement."""
    return run_bounded(
        _measure_here,
        artifact,
        runner,
        settings,
        layers,
        limits=limits or Limits.from_env(),
        lock_path=lock_path,
        progress=progress,
    )


def _measure_here(
    artifact: Path,
    runner: str,
    settings: MeasureSettings,
    layers: bool,
    progress: Callable[[str, int, float], None],
) -> Measurement:
    """The measuring child's one job."""
    from devices.runner import get_runner

    return get_runner(runner).measure(artifact, settings, progress=progress, layers=layers)


@register_kind("profile", result=MeasurementRecord)
def profile(task: JobTask, artifacts: dict[str, Path], host: Host) -> MeasurementRecord:
    fmt = ExportFormat(task.format)
    measurement = measure(
        artifacts[MODEL],
        runner=runner_name(DeviceClass(task.device_class), fmt),
        settings=parse_settings(task.settings),
        lock_path=host.lock_path,
        limits=host.limits,
    )
    return measurement.record()
