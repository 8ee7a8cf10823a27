"""Retention: the store is brought within its bound by freeing the least recently used artifacts
first, never one an unfinished job needs nor one read moments ago; ``latbench gc --dry-run`` says
what it would free and frees nothing; scratch a crashed process left is swept at start."""

from __future__ import annotations

import os
import time
from datetime import timedelta

from typer.testing import CliRunner

from exporters.artifacts import ArtifactStore
from service import retention
from service.cli import app as cli
from service.db import runners
from service.db.tables import RunnerRow, utcnow
from service.jobs import steps
from service.settings import get_settings
from tests.service.test_db import MEASUREMENT, _exported

HOUR = 3600.0


def _key(letter: str) -> str:
    return letter * 32 + "-onnx-fp32"


def _store_three(settings) -> tuple[ArtifactStore, int]:
    """Artifacts a, b, c of 4 KiB each, last used 3, 2 and 1 hours ago; one's stored size."""
    store = ArtifactStore(settings.data_dir)

    def produce(path) -> dict:
        path.write_bytes(b"\0" * 4096)
        return {}

    for age, letter in zip((3, 2, 1), "abc", strict=True):
        store.put(_key(letter), produce)
        stamp = time.time() - age * HOUR
        os.utime(store.root / "artifacts" / _key(letter) / "meta.json", (stamp, stamp))
    return store, store.stored()[0].size_bytes


def test_collection_frees_the_oldest_unused_and_never_what_a_job_needs(sessions, settings):
    store, size = _store_three(settings)
    settings.max_store_bytes = 2 * size + 1  # one of the three must go
    with sessions() as session:
        _exported(session, artifact_key=_key("a"))  # the oldest, but a queued job needs it
        would = retention.collect(session, settings, dry_run=True)
        assert [s.key for s in would] == [_key("b")]
        assert len(store.stored()) == 3  # a dry run frees nothing
        freed = retention.collect(session, settings)
    assert [s.key for s in freed] == [_key("b")]
    assert [s.key for s in store.stored()] == [_key("a"), _key("c")]
    assert store.get(_key("b")) is None and store.get(_key("a")) is not None


def test_a_recently_read_artifact_is_kept(sessions, settings):
    store, size = _store_three(settings)
    settings.max_store_bytes = size  # two must go
    store.require(_key("a"))  # read now: the least recently used is b
    with sessions() as session:
        freed = retention.collect(session, settings)
    assert [s.key for s in freed] == [_key("b"), _key("c")]
    assert [s.key for s in store.stored()] == [_key("a")]


def test_gc_dry_run_says_what_it_would_free(settings, monkeypatch, tmp_path):
    monkeypatch.setenv("LATBENCH_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LATBENCH_DATABASE_URL", f"sqlite:///{tmp_path / 'gc.db'}")
    store, size = _store_three(settings)
    get_settings.cache_clear()
    try:
        shown = CliRunner().invoke(cli, ["gc", "--dry-run", "--limit-bytes", str(2 * size)])
    finally:
        get_settings.cache_clear()
    assert shown.exit_code == 0, shown.output
    assert f"would free {_key('a')}" in shown.stdout and "would free 1 artifact(s)" in shown.stdout
    assert len(store.stored()) == 3


def test_scratch_left_by_a_crash_is_swept_at_start(sessions, settings):
    """Older than the job timeout, no export or upload can still own it; a fresh one may."""
    scratch = settings.data_dir / "tmp"
    crashed = [scratch / ("e" * 32 + "-onnx-fp32.1234"), scratch / "upload-5678.onnx"]
    crashed[0].mkdir(parents=True)
    crashed[1].write_bytes(b"half an upload")
    stamp = time.time() - settings.job_timeout_s - 60
    for path in crashed:
        os.utime(path, (stamp, stamp))
    running = scratch / "upload-9999.onnx"
    running.write_bytes(b"an upload under way")
    with sessions() as session:
        retention.at_start(session, settings)
    assert list(scratch.iterdir()) == [running]


def test_gc_prunes_a_silent_unreferenced_runner_and_keeps_one_a_result_names(sessions, settings):
    """A runner row silent past LATBENCH_RUNNER_RETENTION_S that nothing names goes; one whose
    result is stored stays however silent (its result's provenance, and its revocation, which a
    pruned row would forget: the revoked runner's result would answer as cached again); a
    runner heard from lately stays."""
    with sessions() as s:
        job = _exported(s)
        measured, _ = runners.register_runner(s, device_class="cpu-x86_64", description={})
        steps.claim(s, job_id=job.id, attempt=1, runner_id=measured.id)
    with sessions() as s:  # a runner's result arrives in a request of its own
        steps.complete(s, job_id=job.id, attempt=1, runner_id=measured.id, result=MEASUREMENT)
        runners.revoke(s, name=measured.id)
        silent, _ = runners.register_runner(s, device_class="cpu-x86_64", description={})
        fresh, _ = runners.register_runner(s, device_class="cpu-x86_64", description={})
        long_ago = utcnow() - timedelta(seconds=settings.runner_retention_s + 60)
        for row in (s.get(RunnerRow, measured.id), s.get(RunnerRow, silent.id)):
            row.last_heartbeat = long_ago
        s.commit()
        ids = {"measured": measured.id, "silent": silent.id, "fresh": fresh.id}
        assert retention.prune_runners(s, settings, dry_run=True) == [ids["silent"]]
        assert len(runners.list_runners(s)) == 3  # a dry run prunes nothing
        assert retention.prune_runners(s, settings) == [ids["silent"]]
    with sessions() as s:
        assert {r.id for r in runners.list_runners(s)} == {ids["measured"], ids["fresh"]}
        assert s.get(RunnerRow, ids["measured"]).revoked_at is not None
        assert retention.prune_runners(s, settings) == []
