"""``compare(baseline, candidate, device_class, settings)``: one A/B comparison, wherever it runs.

Today it runs on this host through the devices' A/B mode (a runner of the class, interleaved ABBA
over fresh session pairs). The compare job kind (a runner of the class, embedded or remote, posts
one result) plugs in behind the same function when ``server`` is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devices.runner import Runner, get_runner, runners_for
from devices.settings import MeasureSettings
from devices.stats import Summary, summarize
from exporters.artifacts import Artifact
from exporters.errors import RunnerUnavailableError, SpecError
from exporters.formats import DeviceClass, ExportFormat


@dataclass(frozen=True)
class PairComparison:
    """Candidate/baseline on one device class: per-session-pair ratio estimates (wall clock and,
    on single-thread CPU runs, thread CPU time) and every latency sample of both sides."""

    device_class: str
    runner: str
    samples_baseline: tuple[float, ...]
    samples_candidate: tuple[float, ...]
    wall: tuple[float, ...]
    cpu: tuple[float, ...] | None
    device: dict[str, Any] = field(default_factory=dict)
    host_load: list[dict[str, float]] = field(default_factory=list)
    notes: tuple[str, ...] = ()

    @property
    def baseline(self) -> Summary:
        return summarize(self.samples_baseline)

    @property
    def candidate(self) -> Summary:
        return summarize(self.samples_candidate)

    @property
    def reloads(self) -> int:
        return len(self.wall)

    def estimates(self, metric: str) -> tuple[float, ...]:
        if metric == "cpu":
            if self.cpu is None:
                raise SpecError(
                    "no thread CPU time on this comparison (single-thread CPU runs only)",
                    field="metric",
                )
            return self.cpu
        return self.wall

    def merged(self, more: PairComparison) -> PairComparison:
        """This comparison and ``more`` of the same pair, as one with all their session pairs."""
        return PairComparison(
            device_class=self.device_class,
            runner=self.runner,
            samples_baseline=self.samples_baseline + more.samples_baseline,
            samples_candidate=self.samples_candidate + more.samples_candidate,
            wall=self.wall + more.wall,
            cpu=None if self.cpu is None or more.cpu is None else self.cpu + more.cpu,
            device=self.device,
            host_load=self.host_load + more.host_load,
            notes=more.notes or self.notes,  # the latest round's conditions
        )


def local_runner(device_class: DeviceClass) -> Runner:
    """The first runner of ``device_class`` that can run on this host, preferred format first."""
    reasons = []
    for name in runners_for(device_class):
        try:
            return get_runner(name)
        except RunnerUnavailableError as exc:
            reasons.append(str(exc))
    detail = "; ".join(reasons) or "no runner of that class is registered"
    raise RunnerUnavailableError(
        f"{device_class.value} cannot be measured on this host ({detail}); "
        "attach a runner of that class to a server and pass --server"
    )


def artifact_format(device_class: DeviceClass, server: str | None) -> ExportFormat:
    """The format both sides are built in for ``device_class``."""
    if server is None:
        return local_runner(device_class).formats[0]
    return device_class.formats[0]


def compare(
    baseline: Artifact,
    candidate: Artifact,
    device_class: DeviceClass,
    settings: MeasureSettings,
    *,
    server: str | None = None,
) -> PairComparison:
    if server is not None:
        raise RunnerUnavailableError(
            "comparing on a server's runners needs the compare job kind, which this server "
            "version does not have yet; run the gate without --server to compare on this host"
        )
    runner = local_runner(device_class)
    result = runner.compare(baseline.path, candidate.path, settings)
    return PairComparison(
        device_class=device_class.value,
        runner=result.runner,
        samples_baseline=result.samples_a,
        samples_candidate=result.samples_b,
        wall=result.estimate.estimates,
        cpu=result.cpu_estimate.estimates if result.cpu_estimate else None,
        device=result.device,
        host_load=[result.host_load],
        notes=tuple(result.notes),
    )
