"""Rows to response bodies, in one place so jobs, results and the dashboard agree."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.api.schemas import JobPublic, ResultPublic, RunnerPublic
from service.db import jobs
from service.db.tables import ArtifactRow, JobRow, ResultRow, RunnerRow, SpecRow

ARTIFACT_FIELDS = ("key", "format", "precision", "parity", "checks", "export_path", "size_bytes")


def result_public(
    session: Session, result: ResultRow, spec: SpecRow | None = None, *, samples: bool = False
) -> ResultPublic:
    spec = spec or session.get(SpecRow, result.spec_hash)
    m = result.measurement
    job = session.get(JobRow, result.job_id)
    artifact = session.get(ArtifactRow, job.artifact_key) if job and job.artifact_key else None
    return ResultPublic(
        id=result.id,
        job_id=result.job_id,
        model=result.model,
        family=spec.family if spec else None,
        spec_hash=result.spec_hash,
        device_class=result.device_class,
        format=result.format,
        runner_id=result.runner_id,
        latency_ms=m["latency_ms"],
        device=m.get("device", {}),
        host_load=m.get("host_load", {}),
        settings=m.get("settings", {}),
        target_met=m.get("target_met"),
        stop_reason=m.get("stop_reason"),
        load_ms=m.get("load_ms"),
        warmup_iters=m.get("warmup_iters"),
        peak_memory_mb=m.get("peak_memory_mb"),
        notes=m.get("notes") or [],
        conditions=m.get("conditions"),
        windows=m.get("windows"),
        profiler_overhead=m.get("profiler_overhead"),
        artifact={k: artifact.report.get(k) for k in ARTIFACT_FIELDS} if artifact else None,
        samples_ms=m.get("samples_ms") if samples else None,
        created_at=result.created_at,
    )


def job_public(session: Session, job: JobRow, *, with_result: bool = True) -> JobPublic:
    result = jobs.result_for(session, job_id=job.id) if with_result else None
    return JobPublic(
        id=job.id,
        model=session.get(SpecRow, job.spec_hash).model,
        spec_hash=job.spec_hash,
        device=job.device_class,
        format=job.format,
        state=job.state,
        attempt=job.attempt,
        error=job.error,
        runner_id=job.runner_id,
        settings=job.settings,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        result=result_public(session, result, samples=True) if result else None,
    )


def runner_public(runner: RunnerRow) -> RunnerPublic:
    return RunnerPublic(
        id=runner.id,
        device_class=runner.device_class,
        description=runner.description,
        online=runner.online,
        current_job_id=runner.current_job_id,
        last_heartbeat=runner.last_heartbeat,
    )
