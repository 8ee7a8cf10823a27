"""Gate-run rows: the verdicts a ``latbench gate --server`` run posts, one row per (model,
device) pair, so a repository's gate history is listed by model and device."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from exporters.errors import NotFoundError
from service.db import owners
from service.db.tables import GateRunRow, JobRow


@dataclass(frozen=True)
class GatePair:
    """One pair's verdict as the gate decided it; ``jobs`` are its comparison jobs here."""

    model: str
    device_class: str
    baseline_spec_hash: str
    candidate_spec_hash: str
    verdict: str
    threshold: float
    ratio: float
    ci: tuple[float, float]
    jobs: tuple[str, ...]


def record_gate_run(
    session: Session,
    *,
    user: str,
    labels: dict[str, Any],
    verdict: str,
    metric: str,
    rule: str,
    pairs: Sequence[GatePair],
) -> str:
    """Store a run's pairs under a new run id (returned). Every job a pair names must be a
    compare job of this server (NotFoundError naming ``pairs.N.jobs`` otherwise), so a stored
    verdict always leads to the measurements it stands on. Commits."""
    named = {job for pair in pairs for job in pair.jobs}
    found = set(
        session.scalars(select(JobRow.id).where(JobRow.id.in_(named), JobRow.kind == "compare"))
    )
    for index, pair in enumerate(pairs):
        if missing := [job for job in pair.jobs if job not in found]:
            raise NotFoundError(f"no compare job {missing[0]!r} here", field=f"pairs.{index}.jobs")
    run_id = uuid.uuid4().hex
    fixed = {name: labels.get(name) for name in ("repository", "branch", "commit", "pr")}
    free = {k: v for k, v in labels.items() if k not in fixed}
    for pair in pairs:
        session.add(
            GateRunRow(
                run_id=run_id, user=user, **fixed, labels=free, model=pair.model,
                device_class=pair.device_class, baseline_spec_hash=pair.baseline_spec_hash,
                candidate_spec_hash=pair.candidate_spec_hash, verdict=pair.verdict,
                run_verdict=verdict, metric=metric, threshold=pair.threshold, ratio=pair.ratio,
                ci_low=pair.ci[0], ci_high=pair.ci[1], rule=rule, jobs=list(pair.jobs),
            )
        )  # fmt: skip
    session.commit()
    return run_id


def list_gate_runs(
    session: Session,
    *,
    repository: str | None = None,
    model: str | None = None,
    device_class: str | None = None,
    limit: int = 100,
    viewer: str | None = None,
) -> list[GateRunRow]:
    """Pairs of gate runs, newest first; ``viewer``: only pairs of both sides they may see
    (``owners.visible``; None: all, an admin)."""
    query = select(GateRunRow)
    if viewer is not None:
        seen_by = literal(viewer)
        query = query.where(
            owners.visible(GateRunRow.baseline_spec_hash, seen_by),
            owners.visible(GateRunRow.candidate_spec_hash, seen_by),
        )
    if repository:
        query = query.where(GateRunRow.repository == repository)
    if model:
        query = query.where(GateRunRow.model == model)
    if device_class:
        query = query.where(GateRunRow.device_class == device_class)
    order = (GateRunRow.created_at.desc(), GateRunRow.id.desc())
    return list(session.scalars(query.order_by(*order).limit(limit)))
