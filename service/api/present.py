"""Rows to response bodies, in one place so jobs, results and the dashboard agree."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.api.schemas import (
    ComparisonPublic,
    CvErrorPublic,
    JobBrief,
    JobPublic,
    PredictorPublic,
    ResultPublic,
    RunnerPublic,
    SidePublic,
)
from service.db import jobs
from service.db.comparisons import comparison_for
from service.db.results import prediction_for
from service.db.tables import (
    ArtifactRow,
    ComparisonRow,
    JobRow,
    PredictionRow,
    ResultRow,
    RunnerRow,
    SpecRow,
)
from service.predict.predictor import Predictor

ARTIFACT_FIELDS = ("key", "format", "precision", "parity", "checks", "export_path", "size_bytes")


def result_public(
    session: Session,
    result: ResultRow | PredictionRow,
    spec: SpecRow | None = None,
    *,
    samples: bool = False,
) -> ResultPublic:
    spec = spec or session.get(SpecRow, result.spec_hash)
    job = session.get(JobRow, result.job_id)
    measurement = {  # the artifact's report stands in for the bare file name the runner states
        **result.measurement,
        "artifact": _artifact(session, job.artifact_key if job else None),
        "samples_ms": result.measurement.get("samples_ms") if samples else None,
    }
    return ResultPublic(
        **measurement,
        id=result.id,
        job_id=result.job_id,
        model=result.model,
        family=spec.family if spec else None,
        spec_hash=result.spec_hash,
        device_class=result.device_class,
        format=result.format,
        runner_id=result.runner_id,
        created_at=result.created_at,
    )


def _artifact(session: Session, key: str | None) -> dict[str, object] | None:
    artifact = session.get(ArtifactRow, key) if key else None
    return {k: artifact.report.get(k) for k in ARTIFACT_FIELDS} if artifact else None


def comparison_public(session: Session, row: ComparisonRow) -> ComparisonPublic:
    job = session.get(JobRow, row.job_id)
    keys = job.artifact_keys or {}

    def side(role: str, spec_hash: str) -> SidePublic:
        model = session.get(SpecRow, spec_hash).model
        return SidePublic(
            model=model, spec_hash=spec_hash, artifact=_artifact(session, keys.get(role))
        )

    where = {  # after the stored record: a key a runner added never overrides these
        "id": row.id,
        "job_id": row.job_id,
        "baseline": side("baseline", row.baseline_spec_hash),
        "candidate": side("candidate", row.candidate_spec_hash),
        "device_class": row.device_class,
        "format": row.format,
        "runner_id": row.runner_id,
        "weights": "random",
        "created_at": row.created_at,
    }
    return ComparisonPublic.model_validate({**row.comparison, **where})


def _job_result(session: Session, job: JobRow) -> ResultPublic | ComparisonPublic | None:
    if job.kind == "compare":
        comparison = comparison_for(session, job_id=job.id)
        return comparison_public(session, comparison) if comparison else None
    if job.kind == "predict":
        prediction = prediction_for(session, job_id=job.id)
        return result_public(session, prediction) if prediction else None
    result = jobs.result_for(session, job_id=job.id)
    return result_public(session, result, samples=True) if result else None


def job_brief(job: JobRow, *, cached: bool) -> JobBrief:
    return JobBrief(
        id=job.id,
        kind=job.kind,
        device=job.device_class,
        format=job.format,
        state=job.state,
        cached=cached,
    )


def job_public(session: Session, job: JobRow, *, with_result: bool = True) -> JobPublic:
    return JobPublic(
        id=job.id,
        kind=job.kind,
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
        result=_job_result(session, job) if with_result else None,
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


def predictor_public(predictor: Predictor, *, online_runner: bool) -> PredictorPublic:
    info = predictor.info()
    return PredictorPublic(
        device_class=info.device_class,
        version=info.version,
        method=info.method,
        training_rows=info.training_rows,
        families=info.families,
        cv=CvErrorPublic.model_validate(info.cv.model_dump()),
        online_runner=online_runner,
    )
