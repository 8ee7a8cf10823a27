"""Data functions on real SQLite and PostgreSQL: the constraints that carry the guarantees."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from exporters.errors import ConflictError, NotFoundError
from exporters.spec import parse_spec
from service.auth import Caller
from service.db import accuracy, jobs, runners
from service.db.engine import MIGRATIONS, make_engine, upgrade
from service.db.results import record_result
from service.db.tables import JobRow, ResultRow, SpecRow
from service.jobs.transitions import Event, move

MEASUREMENT = {"latency_ms": {"median": 1.5, "p90": 1.7, "n": 20}}
SPEC_HASH = parse_spec("mobileone_s0").content_hash()


def _job(session, key="k" * 64, user="u", body=None):
    """A queued job of ``body`` (default: the spec mobileone_s0)."""
    spec = parse_spec(body or {"model": "mobileone_s0"})
    spec_hash = spec.content_hash()
    family = spec.model.split("_")[0]
    jobs.upsert_spec(
        session, spec_hash=spec_hash, model=spec.model, family=family, body=spec.identity()
    )
    return jobs.create_or_coalesce(
        session,
        spec_hash=spec_hash,
        device_class="cpu-x86_64",
        fmt="onnx",
        settings={},
        request_key=key,
        user=user,
    )


def _mark_exported(
    session, job_id, attempt=1, artifact_key="a" * 32 + "-onnx-fp32", artifact_keys=None
):
    """What the export step leaves for a runner: the queued job at ``attempt`` with its artifact
    (``artifact_keys``: role -> key, for a job of several models)."""
    assert move(session, Event.START_EXPORT, job_id=job_id, attempt=attempt)
    assert move(
        session,
        Event.EXPORTED,
        job_id=job_id,
        attempt=attempt,
        artifact_key=artifact_key,
        artifact_keys=artifact_keys,
    )


def _exported(session, artifact_key="a" * 32 + "-onnx-fp32", key="k" * 64, user="u"):
    """A queued job whose artifact is exported."""
    job, _ = _job(session, key=key, user=user)
    _mark_exported(session, job.id, artifact_key=artifact_key)
    return job


def test_identical_requests_coalesce_to_one_active_job(sessions):
    with sessions() as s:
        first, created = _job(s)
        second, created_again = _job(s)
    assert created and not created_again
    assert first.id == second.id


def test_concurrent_identical_requests_make_one_job(sessions):
    def submit(_):
        with sessions() as s:
            return _job(s)[0].id

    with ThreadPoolExecutor(16) as pool:
        ids = set(pool.map(submit, range(48)))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(JobRow)) == 1
    assert len(ids) == 1


def test_finished_job_frees_its_key_for_a_new_one(sessions):
    with sessions() as s:
        job, _ = _job(s)
        assert move(s, Event.FAIL, job_id=job.id, attempt=1, error="boom")
        again, created = _job(s)
    assert created and again.id != job.id


def test_transition_refuses_a_stale_attempt(sessions):
    with sessions() as s:
        job, _ = _job(s)
        assert move(s, Event.START_EXPORT, job_id=job.id, attempt=1)
        assert move(s, Event.REQUEUE, job_id=job.id, attempt=1)
        moved = move(s, Event.START_EXPORT, job_id=job.id, attempt=1)
        current = jobs.get_job(s, job_id=job.id)
    assert not moved
    assert (current.state, current.attempt) == ("queued", 2)


def test_a_job_records_one_result_however_often_posted(sessions):
    with sessions() as s:
        job, _ = _job(s)
        first, created = record_result(
            s, job=job, model="m", runner_id=None, measurement=MEASUREMENT
        )
        second, created_again = record_result(
            s, job=job, model="m", runner_id=None, measurement={"latency_ms": {"median": 9.0}}
        )
        count = s.scalar(select(func.count()).select_from(ResultRow))
    assert created and not created_again
    assert second.id == first.id and second.median_ms == 1.5
    assert count == 1


def test_runner_token_is_checked_and_stale_runners_go_offline(sessions):
    from datetime import timedelta

    import pytest

    from exporters.errors import AuthError
    from service.db.tables import utcnow

    with sessions() as s:
        row, token = runners.register_runner(s, device_class="cpu-x86_64", description={})
        assert runners.authenticate(s, runner_id=row.id, token=token).id == row.id
        with pytest.raises(AuthError):
            runners.authenticate(s, runner_id=row.id, token=token + "x")
        assert runners.mark_stale_offline(s, cutoff=utcnow() - timedelta(seconds=60)) == []
        stale = runners.mark_stale_offline(s, cutoff=utcnow() + timedelta(seconds=1))
    assert [r.id for r in stale] == [row.id] and not stale[0].online


def test_migrations_are_idempotent(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    upgrade(engine)  # a restart runs them again
    with engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    engine.dispose()
    assert version == max(p.name[:4] for p in (MIGRATIONS / "versions").glob("0*.py"))


def test_a_measured_request_reuses_its_job_unless_forced(sessions):
    with sessions() as s:
        job, _ = _job(s)
        record_result(s, job=job, model="m", runner_id=None, measurement=MEASUREMENT)
        reused, created = _job(s)
        assert (reused.id, reused.state, created) == (job.id, "done", False)
        forced, forced_created = jobs.create_or_coalesce(
            s,
            spec_hash=SPEC_HASH,
            device_class="cpu-x86_64",
            fmt="onnx",
            settings={},
            request_key="k" * 64,
            user="u",
            reuse_result=False,
        )
        assert forced_created and forced.id != job.id


def test_user_accuracy_is_set_once_per_spec_and_replaced(sessions):
    with sessions() as s:
        job, _ = _job(s)
        spec_hash = job.spec_hash
        with pytest.raises(NotFoundError):
            accuracy.set_accuracy(
                s,
                subject="f" * 64,
                top1=70.0,
                dataset="imagenet-1k",
                resolution=None,
                source="run 1",
                note=None,
                caller=Caller("u", admin=False),
            )
        for top1 in (70.0, 71.5):
            accuracy.set_accuracy(
                s,
                subject=spec_hash,
                top1=top1,
                dataset="imagenet-1k",
                resolution=224,
                source="run 2",
                note="80 epochs",
                caller=Caller("u", admin=False),
            )
        with pytest.raises(ConflictError, match="set by u"):  # someone else's figure
            accuracy.set_accuracy(
                s,
                subject=spec_hash,
                top1=10.0,
                dataset="imagenet-1k",
                resolution=224,
                source="run 3",
                note=None,
                caller=Caller("v", admin=False),
            )
    with sessions() as s:
        stored = accuracy.accuracies(s)
    assert list(stored) == [spec_hash] and stored[spec_hash].top1 == 71.5
    assert stored[spec_hash].note == "80 epochs" and stored[spec_hash].resolution == 224


def store_as_requested(session, spec) -> None:
    """What the profile route stores: the whole request's spec, extra fields included."""
    jobs.upsert_spec(
        session,
        spec_hash=spec.content_hash(),
        model=spec.model,
        family="mobileone",
        body=spec.model_dump(mode="json"),
    )


def test_a_stored_spec_keeps_only_the_fields_its_hash_covers(sessions):
    """Two requests for one spec hash, the first with extra request-only fields: the stored row
    is what the hash covers, so the second builds what it asked for, not what the first did."""
    first = parse_spec({"model": "mobileone_s0", "formats": ["onnx"]})
    second = parse_spec({"model": "mobileone_s0", "formats": ["coreml"]})
    assert first.content_hash() == second.content_hash()
    with sessions() as s:
        for spec in (first, second):
            store_as_requested(s, spec)
        stored = s.get(SpecRow, first.content_hash()).body
    assert stored == first.identity()
    assert parse_spec(stored).content_hash() == first.content_hash()


def test_a_spec_asking_for_a_precision_is_stored_apart(sessions):
    plain = parse_spec("mobileone_s0")
    fp16 = parse_spec({"model": "mobileone_s0", "precision": "fp16"})
    with sessions() as s:
        for spec in (fp16, plain):
            store_as_requested(s, spec)
        rows = {row.hash: row.body for row in s.scalars(select(SpecRow))}
    assert rows[plain.content_hash()]["precision"] is None
    assert rows[fp16.content_hash()]["precision"] == "fp16"


def test_a_job_listing_checks_every_spec_of_a_job_in_its_statement(sessions):
    """A compare job whose second side is alice's upload is bob's to neither list nor count, on
    both databases (the check reads ``jobs.specs`` as text: SQLite's and PostgreSQL's casts)."""
    from service.db.artifacts import UPLOADED
    from service.db.tables import UploadRow

    upload = "f" * 32
    with sessions() as s:
        s.add(SpecRow(hash=upload, model="mine", family=UPLOADED, body={}))
        s.add(UploadRow(artifact_key=f"{upload}-onnx-fp32", content_hash=upload, owner="alice",
                        size_bytes=1))  # fmt: skip
        s.commit()
        _job(s, key="z" * 64)  # the zoo's: everyone's
        jobs.upsert_spec(s, spec_hash=SPEC_HASH, model="mobileone_s0", family="mobileone",
                         body=parse_spec("mobileone_s0").identity())  # fmt: skip
        compare, _ = jobs.create_or_coalesce(
            s, spec_hash=SPEC_HASH, device_class="cpu-x86_64", fmt="onnx", settings={},
            request_key="c" * 64, user="alice", kind="compare",
            specs={"baseline": SPEC_HASH, "candidate": upload},
        )  # fmt: skip
        for viewer, seen in (("bob", 1), ("alice", 2), (None, 2)):
            rows, count = jobs.list_jobs(s, viewer=viewer)
            assert count == len(rows) == seen, viewer
        assert compare.id not in {r.id for r in jobs.list_jobs(s, viewer="bob")[0]}
