"""/healthz for orchestrators (open, even with a token set) and /metrics in the Prometheus text
format, written by ``prometheus_client`` from aggregate queries (no finished job is loaded)."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text

from service.api.deps import ReadSessionDep, UserDep
from service.db import jobs
from service.db.jobs import DurationHistogram, JobState

router = APIRouter(tags=["health"])

DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


@router.get("/healthz", response_model=dict[str, str])
def healthz(session: ReadSessionDep) -> JSONResponse:
    session.execute(text("SELECT 1"))
    return JSONResponse({"status": "ok"})  # a Response: FastAPI validates nothing more


@router.get("/metrics", response_class=Response)
def metrics(session: ReadSessionDep, _user: UserDep) -> Response:
    body = render_metrics(
        jobs.counts_by_state(session),
        jobs.queue_depth(session),
        jobs.done_durations(session, bounds=DURATION_BUCKETS),
    )
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class _Snapshot(Collector):
    """Families computed for this request; the registry only formats them."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def render_metrics(
    by_state: dict[str, int], depth: dict[str, int], durations: DurationHistogram
) -> bytes:
    states = GaugeMetricFamily("latbench_jobs", "Jobs by state.", labels=["state"])
    for state in JobState:
        states.add_metric([state.value], by_state.get(state.value, 0))
    queued = GaugeMetricFamily(
        "latbench_queue_depth", "Jobs waiting, by device class.", labels=["device_class"]
    )
    for device, count in sorted(depth.items()):
        queued.add_metric([device], count)
    buckets = [(f"{b:g}", c) for b, c in zip(durations.bounds, durations.cumulative, strict=True)]
    histogram = HistogramMetricFamily(
        "latbench_job_duration_seconds",
        "Submission to result, done jobs.",
        buckets=[*buckets, ("+Inf", durations.count)],
        sum_value=durations.total_s,
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot([states, queued, histogram]))
    return generate_latest(registry)
