"""The eleven tables. Everything that matters lives here, never only in memory.

Two constraints carry the service's guarantees: ``jobs.active_key`` is unique while a job is
unfinished (NULL afterwards), so identical concurrent requests coalesce to one job; and
``results.job_id`` (``comparisons.job_id`` for compare jobs) is unique, so a job records at most
one result however often it is posted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Naive UTC: SQLite drops time zones, so every timestamp is stored and compared naive."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, list[Any]: JSON}


class SpecRow(Base):
    __tablename__ = "specs"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), index=True)
    family: Mapped[str | None] = mapped_column(String(64), index=True)
    body: Mapped[dict[str, Any]]
    params: Mapped[int | None] = mapped_column(BigInteger)
    macs: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ArtifactRow(Base):
    __tablename__ = "artifacts"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    spec_hash: Mapped[str] = mapped_column(ForeignKey("specs.hash"), index=True)
    format: Mapped[str] = mapped_column(String(16))
    precision: Mapped[str] = mapped_column(String(8))
    path: Mapped[str | None] = mapped_column(Text)
    ok: Mapped[bool]
    report: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="profile", server_default="profile")
    spec_hash: Mapped[str] = mapped_column(ForeignKey("specs.hash"), index=True)
    device_class: Mapped[str] = mapped_column(String(32), index=True)
    format: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict[str, Any]]
    request_key: Mapped[str] = mapped_column(String(64), index=True)
    active_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    user: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str | None] = mapped_column(Text)
    runner_id: Mapped[str | None] = mapped_column(String(32))
    artifact_key: Mapped[str | None] = mapped_column(String(128))
    # kinds taking several models (compare): role -> spec hash (spec_hash is the first role's),
    # and role -> artifact key once exported (artifact_key is the first role's)
    specs: Mapped[dict[str, Any] | None]
    artifact_keys: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    # the export step's last heartbeat while exporting: a vanished export worker stops it
    beat_at: Mapped[datetime | None] = mapped_column(DateTime)
    measure_started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class OneSpecLatency:
    """Columns of a table holding one spec's latency on one device class per job: measured
    (``results``) or predicted (``predictions``), read by the same listing and dashboard code."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), unique=True)
    request_key: Mapped[str] = mapped_column(String(64), index=True)
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(String(128), index=True)
    device_class: Mapped[str] = mapped_column(String(32), index=True)
    format: Mapped[str] = mapped_column(String(16))
    runner_id: Mapped[str | None] = mapped_column(String(32))
    median_ms: Mapped[float] = mapped_column(Float)
    p90_ms: Mapped[float | None] = mapped_column(Float)
    measurement: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class ResultRow(OneSpecLatency, Base):
    __tablename__ = "results"


class ComparisonRow(Base):
    """A compare job's result: candidate/baseline on one device class. Apart from ``results``,
    whose every row is one spec's measurement with a median (listings, dashboard, CSV)."""

    __tablename__ = "comparisons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), unique=True)
    request_key: Mapped[str] = mapped_column(String(64), index=True)
    baseline_spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    candidate_spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    device_class: Mapped[str] = mapped_column(String(32), index=True)
    format: Mapped[str] = mapped_column(String(16))
    runner_id: Mapped[str | None] = mapped_column(String(32))
    ratio: Mapped[float] = mapped_column(Float)
    comparison: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class PredictionRow(OneSpecLatency, Base):
    """A predict job's result: a predicted latency of one spec on a class with no runner. Apart
    from ``results`` so that no listing, cache hit or gate takes it for a measurement.
    ``median_ms`` is the prediction, ``measurement`` the ``PredictionRecord``; no runner, no p90."""

    __tablename__ = "predictions"


class RunnerRow(Base):
    __tablename__ = "runners"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    device_class: Mapped[str] = mapped_column(String(32), index=True)
    description: Mapped[dict[str, Any]]
    token_hash: Mapped[str] = mapped_column(String(64))
    online: Mapped[bool] = mapped_column(default=True)
    current_job_id: Mapped[str | None] = mapped_column(String(32))
    registered_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_heartbeat: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    credential: Mapped[str | None] = mapped_column(String(64), index=True)  # None: shared token
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    # the name the runner registers under (its host's, or --name): registering again under the
    # same name and credential takes this row back instead of adding one; None: unnamed
    name: Mapped[str | None] = mapped_column(String(128), index=True)


class RunnerCredentialRow(Base):
    """What an admin provisions for a device host: a token (stored as its SHA-256) that
    registers runners of the listed device classes only. Revoking it revokes its runners."""

    __tablename__ = "runner_credentials"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_classes: Mapped[list[Any]]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class AccuracyRow(Base):
    """Top-1 a user attached to what they measured (a spec hash; an uploaded artifact's key once
    uploads exist): one per subject, replaced when set again, always shown with its provenance."""

    __tablename__ = "user_accuracy"

    subject: Mapped[str] = mapped_column(String(128), primary_key=True)
    top1: Mapped[float] = mapped_column(Float)
    dataset: Mapped[str] = mapped_column(String(64))
    resolution: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(256))
    note: Mapped[str | None] = mapped_column(Text)
    user: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class GateRunRow(Base):
    """One (model, device) verdict of a ``latbench gate`` run, with the caller's labels; the rows
    of one run share ``run_id``. One row per pair, so listings filter by model and device."""

    __tablename__ = "gate_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    user: Mapped[str] = mapped_column(String(64))
    repository: Mapped[str | None] = mapped_column(String(200), index=True)
    branch: Mapped[str | None] = mapped_column(String(200))
    commit: Mapped[str | None] = mapped_column(String(64))
    pr: Mapped[str | None] = mapped_column(String(32))
    labels: Mapped[dict[str, Any]]
    model: Mapped[str] = mapped_column(String(128), index=True)
    device_class: Mapped[str] = mapped_column(String(32), index=True)
    baseline_spec_hash: Mapped[str] = mapped_column(String(64))
    candidate_spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    verdict: Mapped[str] = mapped_column(String(16))
    run_verdict: Mapped[str] = mapped_column(String(16))
    metric: Mapped[str] = mapped_column(String(8))
    threshold: Mapped[float] = mapped_column(Float)
    ratio: Mapped[float] = mapped_column(Float)
    ci_low: Mapped[float] = mapped_column(Float)
    ci_high: Mapped[float] = mapped_column(Float)
    rule: Mapped[str] = mapped_column(Text)
    jobs: Mapped[list[Any]]  # the comparison job ids of the pair's rounds
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class UserRow(Base):
    """A person with a token of their own (stored as its SHA-256 only); an admin sees and
    manages everything. Revoked users keep their row: what they own stays attributed."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class UploadRow(Base):
    """Who uploaded an artifact: one row per (artifact, owner), since the same bytes uploaded by
    two people are one artifact. An upload, and what measures it, is visible to its owners and
    admins only; ``size_bytes`` counts against each owner's upload quota."""

    __tablename__ = "uploads"
    __table_args__ = (PrimaryKeyConstraint("artifact_key", "owner"),)

    artifact_key: Mapped[str] = mapped_column(String(128))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)  # the upload's spec hash
    owner: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
