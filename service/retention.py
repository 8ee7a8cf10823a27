"""What the server keeps: the artifact store within ``LATBENCH_MAX_STORE_BYTES``, freed least
recently used first, never an artifact an unfinished job needs; scratch a crash left behind (older
than the job timeout, which no export or upload outlives) is swept at start and by gc. A freed export is built again when next asked for; a freed upload is gone (its
owners' quota is freed with it, and its id answers 404 to them: upload it again). Runner rows
silent past ``LATBENCH_RUNNER_RETENTION_S`` that no job or result names are pruned."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from exporters.artifacts import ArtifactStore, Stored
from service.db import runners
from service.db.jobs import ACTIVE
from service.db.tables import JobRow, UploadRow, utcnow
from service.settings import Settings

log = logging.getLogger(__name__)


def needed(session: Session) -> set[str]:
    """Artifact keys that unfinished jobs name (a compare job's every role)."""
    rows = session.execute(
        select(JobRow.artifact_key, JobRow.artifact_keys).where(JobRow.state.in_(ACTIVE))
    )
    keys: set[str] = set()
    for key, by_role in rows:
        keys.update(k for k in (key, *(by_role or {}).values()) if k)
    return keys


def collect(
    session: Session, settings: Settings, *, dry_run: bool = False, limit_bytes: int | None = None
) -> list[Stored]:
    """Free the store down to ``limit_bytes`` (default: the setting); what was (or, with
    ``dry_run``, would be) freed. Commits the freed uploads' ownership rows away."""
    store = ArtifactStore(settings.data_dir)
    if not dry_run and (swept := store.sweep_scratch(older_than_s=settings.job_timeout_s)):
        log.info("swept %d scratch item(s) a crashed process left", len(swept))
    limit = settings.max_store_bytes if limit_bytes is None else limit_bytes
    freed = store.collect(
        limit_bytes=limit, keep=needed(session), grace_s=settings.gc_grace_s, dry_run=dry_run
    )
    if freed and not dry_run:
        session.execute(delete(UploadRow).where(UploadRow.artifact_key.in_([f.key for f in freed])))
        session.commit()
        log.info("freed %d artifact(s), %d bytes", len(freed), sum(f.size_bytes for f in freed))
    return freed


def prune_runners(
    session: Session, settings: Settings, *, dry_run: bool = False, now: datetime | None = None
) -> list[str]:
    """Delete the rows of runners silent for ``LATBENCH_RUNNER_RETENTION_S`` that no job or
    result names (``runners.prune_silent``: a named one keeps its results' provenance and
    revocation); their ids, or with ``dry_run`` the ids that would go. ``now`` (naive UTC) lets
    a test move time."""
    cutoff = (now or utcnow()) - timedelta(seconds=settings.runner_retention_s)
    pruned = runners.prune_silent(session, silent_before=cutoff, dry_run=dry_run)
    if pruned and not dry_run:
        log.info("pruned %d runner row(s) silent since %s", len(pruned), cutoff)
    return pruned


def at_start(session: Session, settings: Settings) -> None:
    """The worker's start, before its dispatcher runs anything: sweep scratch, bring the store
    within its bound, prune long-silent runner rows."""
    collect(session, settings)
    prune_runners(session, settings)
