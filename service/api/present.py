"""Rows to response bodies, in one place so jobs, results and the dashboard agree."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from exporters.sources.ready import reparam_summary, weights_said
from service.api.schemas import (
    ComparisonPublic,
    CvErrorPublic,
    JobBrief,
    JobPublic,
    ModelPublic,
    ModelsPublic,
    PredictorPublic,
    ResultPublic,
    RunnerPublic,
    SidePublic,
)
from service.db import jobs
from service.db.artifacts import UPLOADED
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


def is_upload(spec: SpecRow) -> bool:
    return spec.family == UPLOADED


def result_public(
    result: ResultRow | PredictionRow,
    spec: SpecRow,
    artifact: ArtifactRow | None,
    *,
    samples: bool = False,
    runner_revoked: bool = False,
) -> ResultPublic:
    """``artifact``: the one the result's job measured, and ``runner_revoked``, loaded by the
    caller with the rest of its rows (``jobs.get_job_rows``, ``results.list_results``): a lookup
    per row costs a query each."""
    measurement = {  # the artifact's report stands in for the bare file name the runner states
        **result.measurement,
        "artifact": _report(artifact),
        "samples_ms": result.measurement.get("samples_ms") if samples else None,
    }
    return ResultPublic(
        **measurement,
        id=result.id,
        job_id=result.job_id,
        model=result.model,
        family=spec.family,
        spec_hash=result.spec_hash,
        device_class=result.device_class,
        format=result.format,
        runner_id=result.runner_id,
        runner_revoked=runner_revoked,
        weights=weights_said(is_upload(spec)),
        reparam=reparam_summary(
            artifact.report.get("reparam") if artifact else None, built=not is_upload(spec)
        ),
        created_at=result.created_at,
    )


def _report(artifact: ArtifactRow | None) -> dict[str, object] | None:
    return {k: artifact.report.get(k) for k in ARTIFACT_FIELDS} if artifact else None


def _artifact(session: Session, key: str | None) -> dict[str, object] | None:
    return _report(session.get(ArtifactRow, key) if key else None)


def comparison_public(session: Session, row: ComparisonRow) -> ComparisonPublic:
    job = session.get(JobRow, row.job_id)
    keys = job.artifact_keys or {}

    specs = {
        "baseline": session.get(SpecRow, row.baseline_spec_hash),
        "candidate": session.get(SpecRow, row.candidate_spec_hash),
    }

    def side(role: str) -> SidePublic:
        spec = specs[role]
        return SidePublic(
            model=spec.model,
            spec_hash=spec.hash,
            weights=weights_said(is_upload(spec)),
            artifact=_artifact(session, keys.get(role)),
        )

    where = {  # after the stored record: a key a runner added never overrides these
        "id": row.id,
        "job_id": row.job_id,
        "baseline": side("baseline"),
        "candidate": side("candidate"),
        "device_class": row.device_class,
        "format": row.format,
        "runner_id": row.runner_id,
        "weights": weights_said(*(is_upload(spec) for spec in specs.values())),
        "created_at": row.created_at,
    }
    return ComparisonPublic.model_validate({**row.comparison, **where})


def job_brief(job: JobRow, *, cached: bool) -> JobBrief:
    return JobBrief(
        id=job.id,
        kind=job.kind,
        device=job.device_class,
        format=job.format,
        state=job.state,
        cached=cached,
    )


def job_view(session: Session, *, job_id: str, viewer: str | None) -> JobPublic:
    """One job with its result (GET /jobs/{id}); a profile job's rows, its runner's revocation
    and ``viewer``'s right to see it (None: an admin) come in one statement."""
    rows = jobs.get_job_rows(session, job_id=job_id, viewer=viewer)
    result: ResultPublic | ComparisonPublic | None = None
    if rows.job.kind == "compare":
        comparison = comparison_for(session, job_id=rows.job.id)
        result = comparison_public(session, comparison) if comparison else None
    elif rows.job.kind == "predict":
        prediction = prediction_for(session, job_id=rows.job.id)
        result = result_public(prediction, rows.spec, rows.artifact) if prediction else None
    elif rows.result is not None:
        result = result_public(
            rows.result, rows.spec, rows.artifact, samples=True, runner_revoked=rows.runner_revoked
        )
    return _job_public(rows.job, rows.spec.model, result, runner_revoked=rows.runner_revoked)


def job_public(session: Session, job: JobRow) -> JobPublic:
    """A job as listed (GET /jobs, the dashboard): without its result."""
    return _job_public(job, session.get(SpecRow, job.spec_hash).model, None)


def _job_public(
    job: JobRow,
    model: str,
    result: ResultPublic | ComparisonPublic | None,
    *,
    runner_revoked: bool = False,
) -> JobPublic:
    return JobPublic(
        id=job.id,
        kind=job.kind,
        model=model,
        spec_hash=job.spec_hash,
        device=job.device_class,
        format=job.format,
        state=job.state,
        attempt=job.attempt,
        error=job.error,
        runner_id=job.runner_id,
        runner_revoked=runner_revoked,
        submitted_by=job.user,
        settings=job.settings,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        result=result,
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
        offered_because=info.offered_because,
        online_runner=online_runner,
    )


def models_public(session: Session, refs: dict, entries: list, total: int) -> ModelsPublic:
    """Zoo entries with params and MACs (measured at export where a spec row has them, else
    published) and the published top-1: the body of GET /models and of `latbench models --json`."""
    measured = {
        row.model: row
        for row in session.scalars(
            select(SpecRow).where(
                SpecRow.model.in_([e.name for e in entries]), SpecRow.params.is_not(None)
            )
        )
    }
    data = []
    for entry in entries:
        ref, spec = refs.get(entry.name), measured.get(entry.name)
        data.append(
            ModelPublic(
                name=entry.name,
                family=entry.family,
                params=spec.params if spec else _scaled(ref and ref.params_m, 1e6),
                macs=spec.macs if spec else _scaled(ref and ref.gmacs, 1e9),
                input_size=list(entry.input_size),
                reference_top1=ref.top1 if ref else None,
                reference_source=ref.source if ref else None,
            )
        )
    return ModelsPublic(data=data, count=total)


def _scaled(value: float | None, factor: float) -> int | None:
    return round(value * factor) if value else None
