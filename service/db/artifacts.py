"""Artifact rows: what the export step produced for a spec (the files live in the ArtifactStore)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from exporters.errors import NotFoundError
from service.db.engine import commit_new
from service.db.tables import ArtifactRow, SpecRow

if TYPE_CHECKING:
    from exporters.export import ExportReport

UPLOADED = "uploaded"  # the family of an uploaded artifact's spec row


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


def record_upload(
    session: Session, *, key: str, label: str, path: str, meta: dict[str, Any]
) -> None:
    """An uploaded artifact: its content hash stands in for a spec hash (a spec row that says it
    was uploaded, so jobs can point at it) and one artifact row. Idempotent: a concurrent
    upload of the same bytes that commits first leaves the same rows. Commits."""
    content_hash, fmt, precision = key.split("-")
    if session.get(SpecRow, content_hash) is None:
        body = {"source": "upload", "format": fmt, "label": label}
        session.add(SpecRow(hash=content_hash, model=label, family=UPLOADED, body=body))
    if session.get(ArtifactRow, key) is None:
        session.add(
            ArtifactRow(key=key, spec_hash=content_hash, format=fmt, precision=precision,
                        path=path, ok=True, report=meta)
        )  # fmt: skip
    commit_new(session)


def uploaded(session: Session, *, key: str, field: str = "artifact") -> ArtifactRow:
    """The uploaded artifact ``key`` (the id POST /artifacts returned); NotFoundError otherwise,
    so a profile request by id never reaches an export step that would try to build it."""
    row = session.get(ArtifactRow, key)
    spec = session.get(SpecRow, row.spec_hash) if row is not None else None
    if row is None or spec is None or spec.family != UPLOADED:
        raise no_upload(key, field)
    return row


def no_upload(key: str, field: str) -> NotFoundError:
    return NotFoundError(
        f"no uploaded artifact {key!r}; upload it with POST /artifacts", field=field
    )


def upload_key(session: Session, *, spec_hash: str, fmt: str) -> str:
    """The key of the upload whose content hash is ``spec_hash`` (a job measuring it, queued
    again after an interruption, finds its artifact here instead of building it)."""
    query = select(ArtifactRow.key).where(
        ArtifactRow.spec_hash == spec_hash, ArtifactRow.format == fmt
    )
    key = session.scalars(query).first()
    if key is None:
        raise NotFoundError(
            f"no uploaded {fmt} artifact with content hash {spec_hash}", field="artifact"
        )
    return key
