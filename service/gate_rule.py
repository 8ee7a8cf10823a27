"""The server's own verdict on a posted gate run: each pair's verdict recomputed from the
comparisons stored for the compare jobs it names, by the gate's rule (``service.verdict``: the
ratio interval over every session pair of every round, at the Bonferroni level of the run's pair
count) and the pair's stated threshold. A run whose claimed verdict disagrees is refused (422):
the history shows what the measurements say, never what a client claims."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from devices.results import ComparisonRecord
from exporters.errors import NotFoundError, SpecError
from service.db.gateruns import GatePair
from service.db.tables import ComparisonRow
from service.verdict import Verdict, decide_on, pair_confidence, run_verdict


def checked_pairs(
    session: Session, pairs: Sequence[GatePair], *, metric: str, claimed: str
) -> list[GatePair]:
    """``pairs`` with the ratio and interval the server computed; SpecError naming the field
    (``pairs.N.verdict``, ``verdict``) when a claimed verdict is not what the stored
    comparisons say, NotFoundError (``pairs.N.jobs``) for a job with no stored comparison."""
    confidence = pair_confidence(len(pairs))
    checked: list[GatePair] = []
    for index, pair in enumerate(pairs):
        estimates = _estimates(session, pair, metric, field=f"pairs.{index}.jobs")
        try:
            decision = decide_on(estimates, pair.threshold, confidence)
        except SpecError as exc:
            raise SpecError(str(exc), field=f"pairs.{index}.jobs") from exc
        said = decision.verdict.name.lower()
        if said != pair.verdict:
            raise SpecError(
                f"pair {pair.model} on {pair.device_class} claims {pair.verdict}; its stored "
                f"comparisons say {decision.explain()}",
                field=f"pairs.{index}.verdict",
            )
        checked.append(replace(pair, ratio=decision.ratio, ci=decision.ci95))
    overall = run_verdict([Verdict[p.verdict.upper()] for p in checked]).name.lower()
    if overall != claimed:
        raise SpecError(f"the run claims {claimed}; its pairs make it {overall}", field="verdict")
    return checked


def _estimates(session: Session, pair: GatePair, metric: str, *, field: str) -> list[float]:
    """Every session pair's ratio of the pair's compare jobs, in the order named."""
    if not pair.jobs:
        raise SpecError("name the pair's compare jobs: its verdict is computed from them", field)
    rows = {
        row.job_id: row
        for row in session.scalars(select(ComparisonRow).where(ComparisonRow.job_id.in_(pair.jobs)))
    }
    estimates: list[float] = []
    for job_id in pair.jobs:
        row = rows.get(job_id)
        if row is None:
            raise NotFoundError(f"no finished compare job {job_id!r} here", field=field)
        if (row.device_class, row.baseline_spec_hash, row.candidate_spec_hash) != (
            pair.device_class, pair.baseline_spec_hash, pair.candidate_spec_hash,
        ):  # fmt: skip
            raise SpecError(f"compare job {job_id} measured another pair", field=field)
        record = ComparisonRecord.model_validate(row.comparison)
        ratios = record.per_reload_ratios if metric == "wall" else _cpu(record, field)
        estimates.extend(ratios)
    return estimates


def _cpu(record: ComparisonRecord, field: str) -> list[float]:
    if record.cpu_ratio is None:
        raise SpecError("no thread CPU time on this comparison (metric cpu)", field=field)
    return record.cpu_ratio.per_reload_ratios
