"""Artifact rows: what the export step produced for a spec (the files live in the ArtifactStore)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.db.tables import ArtifactRow, SpecRow


def record_export(session: Session, *, spec_hash: str, report: dict[str, Any]) -> None:
    """Store an ``ExportReport.to_dict()``: params/MACs on the spec, a row per artifact. Commits."""
    spec = session.get(SpecRow, spec_hash)
    if spec is not None:
        spec.params, spec.macs = report.get("params"), report.get("macs")
    for item in report.get("artifacts", []):
        row = session.get(ArtifactRow, item["key"]) or ArtifactRow(
            key=item["key"], spec_hash=spec_hash
        )
        row.format, row.precision = item["format"], item["precision"]
        # the spec's reparameterization proof is kept beside each artifact it was proven for
        report_of = {**item, "reparam": report.get("reparam")}
        row.path, row.ok, row.report = item.get("path"), bool(item.get("ok")), report_of
        session.merge(row)
    session.commit()
