"""``compare(baseline, candidate, device_class, settings)``: one A/B comparison, wherever it runs.

Without a server it runs on this host through the devices' A/B mode (a runner of the class,
interleaved ABBA over fresh session pairs). With ``server`` (a ``Remote``) both artifacts are
uploaded (the server never imports user code) and a compare job runs on a runner of the class
attached to it, embedded or remote; its one stored result becomes the same ``PairComparison``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devices.jobs.compare import ab
from devices.jobs.lock import lock_path_from_env
from devices.jobs.profile import choose_runner
from devices.settings import MeasureSettings
from devices.stats import Summary, summarize
from exporters.artifacts import Artifact
from exporters.errors import RunnerUnavailableError, SpecError
from exporters.formats import DeviceClass, ExportFormat
from service.gate import refuse_predicted

if TYPE_CHECKING:
    from devices.results import ComparisonRecord


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
    jobs: tuple[str, ...] = ()  # the server's compare job of each round (--server only)

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
            jobs=self.jobs + more.jobs,
        )


def local_runner(device_class: DeviceClass) -> tuple[str, ExportFormat]:
    """The runner of ``device_class`` on this host and its format, chosen as every other path
    chooses (``choose_runner``)."""
    try:
        return choose_runner(device_class)
    except RunnerUnavailableError as exc:
        raise RunnerUnavailableError(
            f"{device_class.value} cannot be measured on this host ({exc}); "
            "attach a runner of that class to a server and pass --server"
        ) from None


@dataclass
class Remote:
    """A latbench server whose runners compare (``latbench gate --server``). Each artifact is
    uploaded once per gate; the server keys it by its bytes, so its id is the local key."""

    url: str
    token: str | None = None
    allow_predicted: bool = False
    progress: Callable[[str], None] | None = None
    uploaded: dict[str, str] = field(default_factory=dict)  # local key -> the server's id

    def upload(self, artifact: Artifact, *, label: str | None = None) -> str:
        """The server's id of ``artifact`` (uploaded under ``label``, the gate's model name, on
        first use)."""
        import httpx

        from service.remote import upload_artifact, upload_label

        if artifact.key not in self.uploaded:
            label = upload_label(label or str(artifact.meta.get("model", "uploaded")))
            try:
                with httpx.Client(base_url=self.url, timeout=300) as client:
                    done = upload_artifact(client, artifact, name=label, token=self.token)
            except httpx.HTTPError as exc:
                raise SpecError(f"cannot reach {self.url}: {exc}", field="server") from None
            self.uploaded[artifact.key] = done["id"]
        return self.uploaded[artifact.key]


def artifact_format(device_class: DeviceClass, server: Remote | None) -> ExportFormat:
    """The format both sides are built in for ``device_class``."""
    if server is None:
        return local_runner(device_class)[1]
    return device_class.formats[0]


def compare(
    baseline: Artifact,
    candidate: Artifact,
    device_class: DeviceClass,
    settings: MeasureSettings,
    *,
    server: Remote | None = None,
    force: bool = False,
) -> PairComparison:
    """One round; ``force`` asks the server to measure again (a further round of the same pair
    must not be answered with the stored first one)."""
    if server is not None:
        return _on_server(baseline, candidate, device_class, settings, server, force=force)
    runner, _ = local_runner(device_class)
    result = ab(
        baseline.path, candidate.path, runner=runner, settings=settings,
        lock_path=lock_path_from_env(),
    )  # fmt: skip
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


def _on_server(
    baseline: Artifact,
    candidate: Artifact,
    device_class: DeviceClass,
    settings: MeasureSettings,
    server: Remote,
    *,
    force: bool,
) -> PairComparison:
    from service.remote import remote_compare

    sides = [{"artifact": server.upload(artifact)} for artifact in (baseline, candidate)]
    progress = server.progress

    def state(value: str) -> None:
        if progress is not None:
            progress(f"{device_class.value}: compare job {value}")

    record = remote_compare(
        server.url, server.token, *sides, device_class, settings, force=force, progress=state
    )
    return from_record(record, device_class, allow_predicted=server.allow_predicted)


def from_record(
    record: ComparisonRecord, device_class: DeviceClass, *, allow_predicted: bool = False
) -> PairComparison:
    """A comparison job's stored result as a round of the gate."""
    extra = record.model_extra or {}
    refuse_predicted(extra, allow=allow_predicted)
    return PairComparison(
        device_class=device_class.value,
        runner=record.runner or str(extra.get("runner_id", "unknown")),
        samples_baseline=tuple(record.samples_a or ()),
        samples_candidate=tuple(record.samples_b or ()),
        wall=tuple(record.per_reload_ratios),
        cpu=tuple(record.cpu_ratio.per_reload_ratios) if record.cpu_ratio else None,
        device=record.device,
        host_load=[record.host_load],
        notes=tuple(record.notes),
        jobs=(str(extra["job_id"]),) if "job_id" in extra else (),
    )
