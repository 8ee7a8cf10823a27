"""The ``compare`` job kind: A/B mode on this host with the runner for the job's device class,
baseline as A and candidate as B, interleaved over ``ab_reloads`` fresh session pairs under the
exclusive host lock. One result: the ratio candidate/baseline with its CI, both latencies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from devices.jobs.bounded import Limits, run_bounded
from devices.jobs.kinds import register_kind
from devices.jobs.port import Host, JobTask
from devices.jobs.profile import runner_name
from devices.results import Comparison, ComparisonRecord
from devices.settings import MeasureSettings, parse_settings
from exporters.errors import SpecError
from exporters.formats import DeviceClass, ExportFormat

ROLES = ("baseline", "candidate")


@register_kind("compare", result=ComparisonRecord)
def compare(task: JobTask, artifacts: dict[str, Path], host: Host) -> ComparisonRecord:
    missing = [role for role in ROLES if role not in artifacts]
    if missing:
        raise SpecError(
            f"a compare job needs a {' and a '.join(missing)} artifact", field="artifact_keys"
        )
    comparison = ab(
        artifacts["baseline"],
        artifacts["candidate"],
        runner=runner_name(DeviceClass(task.device_class), ExportFormat(task.format)),
        settings=parse_settings(task.settings),
        lock_path=host.lock_path,
        limits=host.limits,
    )
    return comparison.record()


def ab(
    baseline: Path,
    candidate: Path,
    *,
    runner: str,
    settings: MeasureSettings,
    lock_path: Path,
    progress: Callable[[str, int, float], None] | None = None,
    limits: Limits | None = None,
) -> Comparison:
    """Runner ``runner``'s A/B mode on the two artifacts, in a child process bounded by ``limits``
    (default: from the environment) under the exclusive host lock: what the compare kind, the
    CLI's ``compare`` and the gate's local run all call."""
    return run_bounded(
        _ab_here,
        baseline,
        candidate,
        runner,
        settings,
        limits=limits or Limits.from_env(),
        lock_path=lock_path,
        progress=progress,
        what="comparison",
    )


def _ab_here(
    baseline: Path,
    candidate: Path,
    runner: str,
    settings: MeasureSettings,
    progress: Callable[[str, int, float], None],
) -> Comparison:
    """The comparing child's one job."""
    from devices.runner import get_runner

    return get_runner(runner).compare(baseline, candidate, settings, progress=progress)
