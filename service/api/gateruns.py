"""POST /gate-runs and GET /gate-runs: the verdicts ``latbench gate --server`` posts, with the
caller's labels (repository, branch, commit, pull request, free labels), listed by repository,
model and device: a repository's gate history beside the measurements it stands on."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field, StringConstraints

from exporters.artifacts import KEY_PATTERN, spec_hash_of
from exporters.formats import DeviceClass
from service.api.deps import CallerDep, ReadSessionDep, SessionDep, UserDep
from service.api.schemas import StoredTime, Strict
from service.db.gateruns import GatePair, list_gate_runs, record_gate_run
from service.db.tables import GateRunRow
from service.gate_rule import checked_pairs

router = APIRouter(prefix="/gate-runs", tags=["gate"])

Label = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Verdict = Literal["pass", "regression", "inconclusive"]


class GateLabels(Strict):
    repository: Label | None = None
    branch: Label | None = None
    commit: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{4,64}$")] | None = None
    pr: Annotated[str, StringConstraints(max_length=32)] | None = None
    extra: dict[Annotated[str, StringConstraints(max_length=64)], Label] = Field(
        default_factory=dict, max_length=16, description="free labels, e.g. {'runner': 'lab-1'}"
    )


class GatePairIn(Strict):
    model: Label
    device: DeviceClass
    baseline: str = Field(..., pattern=KEY_PATTERN.pattern, description="its artifact id")
    candidate: str = Field(..., pattern=KEY_PATTERN.pattern, description="its artifact id")
    verdict: Verdict
    threshold: float = Field(..., ge=0, le=10)
    ratio: float = Field(..., gt=0)
    ci: tuple[float, float]
    jobs: list[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]] = Field(
        ..., min_length=1, max_length=64, description="its compare jobs on this server"
    )


class GateRunCreate(Strict):
    labels: GateLabels = Field(default_factory=GateLabels)
    verdict: Verdict
    metric: Literal["wall", "cpu"]
    rule: Annotated[str, StringConstraints(max_length=2000)]
    pairs: list[GatePairIn] = Field(..., min_length=1, max_length=256)


class GateRunCreated(BaseModel):
    id: str
    pairs: int


class GateRunPublic(BaseModel):
    run_id: str
    created_at: StoredTime
    repository: str | None
    branch: str | None
    commit: str | None
    pr: str | None
    labels: dict[str, str]
    model: str
    device_class: str
    baseline_spec_hash: str
    candidate_spec_hash: str
    verdict: str
    run_verdict: str
    metric: str
    threshold: float
    ratio: float
    ci95: tuple[float, float]
    jobs: list[str]


class GateRunsPublic(BaseModel):
    data: list[GateRunPublic]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=GateRunCreated)
def create_gate_run(body: GateRunCreate, session: SessionDep, user: UserDep) -> GateRunCreated:
    """Store a gate run's verdicts, each recomputed from its compare jobs' stored comparisons
    (``service.gate_rule``): a claimed verdict they do not bear out is refused (422)."""
    pairs = [
        GatePair(
            model=p.model, device_class=p.device.value,
            baseline_spec_hash=spec_hash_of(p.baseline),
            candidate_spec_hash=spec_hash_of(p.candidate), verdict=p.verdict,
            threshold=p.threshold, ratio=p.ratio, ci=p.ci, jobs=tuple(p.jobs),
        )
        for p in body.pairs
    ]  # fmt: skip
    pairs = checked_pairs(session, pairs, metric=body.metric, claimed=body.verdict)
    labels = {**body.labels.model_dump(exclude={"extra"}), **body.labels.extra}
    run_id = record_gate_run(
        session, user=user, labels=labels, verdict=body.verdict, metric=body.metric,
        rule=body.rule, pairs=pairs,
    )  # fmt: skip
    return GateRunCreated(id=run_id, pairs=len(pairs))


@router.get("", response_model=GateRunsPublic)
def read_gate_runs(
    session: ReadSessionDep,
    caller: CallerDep,
    repository: str | None = Query(None, max_length=200),
    model: str | None = Query(None, max_length=128),
    device: DeviceClass | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> GateRunsPublic:
    """Gate-run pairs, newest first."""
    rows = list_gate_runs(
        session,
        repository=repository,
        model=model,
        device_class=device.value if device else None,
        limit=limit,
        viewer=None if caller.admin else caller.name,
    )
    return GateRunsPublic(data=[public(row) for row in rows])


def public(row: GateRunRow) -> GateRunPublic:
    return GateRunPublic(
        **{name: getattr(row, name) for name in GateRunPublic.model_fields if hasattr(row, name)},
        ci95=(row.ci_low, row.ci_high),
    )
