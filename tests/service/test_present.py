"""What presenting jobs and results costs in queries: GET /jobs/{id} loads its rows in one query,
GET /results in a fixed number whatever the row count (a lookup per listed result made a long
listing one round trip per row), and both still show each result's own artifact."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from exporters.errors import NotFoundError
from service.api.present import job_view, result_public
from service.db import jobs
from service.db.results import list_results, record_result
from service.db.tables import ArtifactRow
from tests.service.test_db import MEASUREMENT, SPEC_HASH, _job


def _done_job(session, index: int) -> str:
    """A finished job whose artifact report names it (``size_bytes``: its index)."""
    job, _ = _job(session, key=f"{index:064d}")
    key = f"{SPEC_HASH}-onnx-{index}"
    session.add(
        ArtifactRow(
            key=key,
            spec_hash=SPEC_HASH,
            format="onnx",
            precision="fp32",
            path=None,
            ok=True,
            report={"key": key, "size_bytes": index},
        )
    )
    job.artifact_key = key
    session.commit()
    record_result(session, job=job, model="mobileone_s0", runner_id=None, measurement=MEASUREMENT)
    return job.id


@contextmanager
def counted(engine):
    """The SELECT statements sent through ``engine`` while the block runs."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _listing(session) -> list[int]:
    rows = list_results(session, model="mobileone_s0")
    shown = [result_public(row.result, row.spec, row.artifact) for row in rows]
    return [r.artifact["size_bytes"] for r in shown]


def test_results_listing_costs_the_same_queries_for_one_row_or_many(sessions):
    with sessions() as s:
        _done_job(s, 1)
    with sessions() as s, counted(s.get_bind()) as one:
        assert _listing(s) == [1]
    with sessions() as s:
        for index in range(2, 6):
            _done_job(s, index)
    with sessions() as s, counted(s.get_bind()) as five:
        assert sorted(_listing(s)) == [1, 2, 3, 4, 5]
    assert len(five) == len(one)


def test_job_view_loads_its_rows_in_one_query(sessions):
    with sessions() as s:
        job_id = _done_job(s, 7)
    with sessions() as s, counted(s.get_bind()) as sent:
        shown = job_view(s, job_id=job_id, viewer=None)
    assert shown.state == "done" and shown.model == "mobileone_s0"
    assert shown.result.latency_ms.median == 1.5 and shown.result.artifact["size_bytes"] == 7
    assert not shown.runner_revoked and len(sent) == 1


def test_a_job_views_visibility_and_revoked_runner_come_in_its_one_query(sessions):
    """A user's view of a job also says whether they may see it and whether its runner was
    revoked since, in the same statement (each was a query of its own: three for one view)."""
    from service.db import runners
    from service.db.artifacts import UPLOADED
    from service.db.tables import SpecRow, UploadRow
    from service.jobs import steps

    with sessions() as s:
        job_id = _done_job(s, 8)
        runner, _ = runners.register_runner(s, device_class="cpu-x86_64", description={})
        s.add(SpecRow(hash="u" * 32, model="addnet", family=UPLOADED, body={"model": "addnet"}))
        s.add(UploadRow(artifact_key="k", content_hash="u" * 32, owner="alice", size_bytes=1))
        s.commit()
        private, _ = jobs.create_or_coalesce(
            s, spec_hash="u" * 32, device_class="cpu-x86_64", fmt="onnx", settings={},
            request_key="u" * 64, user="alice",
        )  # fmt: skip
        private.artifact_key = f"{SPEC_HASH}-onnx-8"
        s.commit()
        steps.claim(s, job_id=private.id, attempt=1, runner_id=runner.id)
        runners.revoke(s, name=runner.id)
    for viewer in ("alice", "bob"):
        with sessions() as s, counted(s.get_bind()) as sent:
            assert not job_view(s, job_id=job_id, viewer=viewer).runner_revoked  # the zoo's
        assert len(sent) == 1
    with sessions() as s, counted(s.get_bind()) as sent:
        shown = job_view(s, job_id=private.id, viewer="alice")
    assert shown.state == "measuring" and shown.runner_revoked and len(sent) == 1
    with sessions() as s, pytest.raises(NotFoundError, match=f"no job '{private.id}'"):
        job_view(s, job_id=private.id, viewer="bob")


def test_each_listing_filter_selects_its_rows(sessions):
    """The listing's statement is built once per set of filters (bound values): each filter and
    the limit still select what they name."""
    from datetime import timedelta

    from service.db.tables import utcnow

    with sessions() as s:
        for index, model in enumerate(("mobileone_s0", "resnet18")):
            job, _ = _job(s, key=f"{index:064d}", body={"model": model})
            record_result(s, job=job, model=model, runner_id=None, measurement=MEASUREMENT)
    with sessions() as s:

        def models(**filters) -> list[str]:
            return [row.result.model for row in list_results(s, **filters)]

        assert models() == ["resnet18", "mobileone_s0"]  # newest first
        assert models(model="resnet18") == ["resnet18"]
        assert models(family="mobileone") == ["mobileone_s0"]
        assert models(device_class="cpu-arm64") == []
        assert models(device_class="cpu-x86_64", model="mobileone_s0") == ["mobileone_s0"]
        assert models(since=utcnow() + timedelta(hours=1)) == []
        assert models(since=utcnow() - timedelta(hours=1), limit=1) == ["resnet18"]
        assert models(kind="predicted") == []


def test_a_result_of_an_uploaded_artifact_says_its_weights_are_the_uploads(sessions):
    """latbench builds with random weights and says so; an upload carries its own weights, and
    its results, comparisons and model page must not claim "random" (they did)."""
    from service.db import jobs
    from service.db.artifacts import UPLOADED
    from service.db.tables import SpecRow

    with sessions() as s:
        s.add(SpecRow(hash="u" * 32, model="addnet", family=UPLOADED, body={"model": "addnet"}))
        s.commit()
        job, _ = jobs.create_or_coalesce(
            s, spec_hash="u" * 32, device_class="cpu-x86_64", fmt="onnx", settings={},
            request_key="u" * 64, user="u",
        )  # fmt: skip
        record_result(s, job=job, model="addnet", runner_id=None, measurement=MEASUREMENT)
        built, _ = _job(s, key="b" * 64)
        record_result(s, job=built, model="mobileone_s0", runner_id=None, measurement=MEASUREMENT)
    with sessions() as s:
        shown = {
            row.result.model: result_public(row.result, row.spec, row.artifact).weights
            for row in list_results(s)
        }
    assert shown == {"addnet": "as uploaded", "mobileone_s0": "random"}
