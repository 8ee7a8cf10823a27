"""The ``compare`` job kind: A/B mode on this host with the runner for the job's device class,
baseline as A and candidate as B, interleaved over ``ab_reloads`` fresh session pairs under the
exclusive host lock. One result: the ratio candidate/baseline with its CI, both latencies."""

from __future__ import annotations

from pathlib import Path

from devices.jobs.kinds import register_kind
from devices.jobs.lock import host_lock
from devices.jobs.port import Host, JobTask
from devices.jobs.profile import runner_name
from devices.results import ComparisonRecord
from devices.settings import parse_settings
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
    from devices.runner import get_runner

    runner = get_runner(runner_name(DeviceClass(task.device_class), ExportFormat(task.format)))
    with host_lock(host.lock_path, exclusive=True):
        comparison = runner.compare(
            artifacts["baseline"], artifacts["candidate"], parse_settings(task.settings)
        )
    return comparison.record()
