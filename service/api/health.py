"""/healthz for orchestrators and /metrics in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from sqlalchemy import text

from service.api.deps import ReadSessionDep
from service.db import jobs
from service.db.jobs import JobState

router = APIRouter(tags=["health"])

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800)


@router.get("/healthz")
def healthz(session: ReadSessionDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(session: ReadSessionDep) -> str:
    return render_metrics(
        jobs.counts_by_state(session), jobs.queue_depth(session), jobs.done_durations(session)
    )


def render_metrics(by_state: dict[str, int], depth: dict[str, int], durations: list[float]) -> str:
    lines = ["# HELP latbench_jobs Jobs by state.", "# TYPE latbench_jobs gauge"]
    lines += [f'latbench_jobs{{state="{s.value}"}} {by_state.get(s.value, 0)}' for s in JobState]
    lines += [
        "# HELP latbench_queue_depth Jobs waiting, by device class.",
        "# TYPE latbench_queue_depth gauge",
    ]
    lines += [f'latbench_queue_depth{{device_class="{d}"}} {n}' for d, n in sorted(depth.items())]
    lines += [
        "# HELP latbench_job_duration_seconds Submission to result, finished jobs.",
        "# TYPE latbench_job_duration_seconds histogram",
    ]
    for bound in DURATION_BUCKETS:
        count = sum(1 for d in durations if d <= bound)
        lines.append(f'latbench_job_duration_seconds_bucket{{le="{bound}"}} {count}')
    lines.append(f'latbench_job_duration_seconds_bucket{{le="+Inf"}} {len(durations)}')
    lines.append(f"latbench_job_duration_seconds_sum {sum(durations):.3f}")
    lines.append(f"latbench_job_duration_seconds_count {len(durations)}")
    return "\n".join(lines) + "\n"
