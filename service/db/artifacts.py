"""Artifact rows: what the export step produced for a spec (the files live in the ArtifactStore)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from service.db.tables import ArtifactRow, SpecRow

if TYPE_CHECKING:
    from exporters.export import ExportReport


def record_export(session: Session, *, spec_hash: str, report: ExportReport) -> None:
    """Store an export report: params/MACs on the spec, a row per artifact. Commits."""
    spec = session.get(SpecRow, spec_hash)
    if spec is not None:
        spec.params, spec.macs = report.params, report.macs
    for item in report.artifacts:
        row = session.get(ArtifactRow, item.key) or ArtifactRow(key=item.key, spec_hash=spec_hash)
        row.format, row.precision = item.format, item.precision
        # the spec's reparameterization proof is kept beside each artifact it was proven for
        row.path, row.ok = item.path, item.ok
        row.report = {**asdict(item), "reparam": report.reparam}
        session.merge(row)
    session.commit()
