"""Offline detection, requeue, job timeout and restart recovery, with a recording dispatcher
(a test double standing in for the queue, as DESIGN.md allows in dispatch unit tests)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from exporters.errors import ConflictError
from service import jobservice
from service.db import jobs, runners
from service.db.jobs import JobState
from service.db.results import record_result
from service.db.tables import JobRow, RunnerRow, utcnow
from service.dispatch.reaper import reap, recover
from tests.service.test_db import _job


class Recorder:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, int]] = []

    def submit(self, job_id: str, attempt: int) -> None:
        self.submitted.append((job_id, attempt))


def _measuring(sessions):
    """A job claimed by a registered runner, as after export."""
    with sessions() as s:
        job, _ = _job(s)
        runner, _ = runners.register_runner(s, device_class="cpu-x86_64", description={})
        jobservice.claim(s, job_id=job.id, attempt=1, runner_id=runner.id)
    return job.id, runner.id


def _age(sessions, model, key, column, seconds):
    with sessions() as s:
        row = s.get(model, key)
        setattr(row, column, utcnow() - timedelta(seconds=seconds))
        s.commit()


def test_silent_runner_goes_offline_and_its_job_is_requeued(sessions, settings):
    job_id, runner_id = _measuring(sessions)
    recorder = Recorder()
    reap(sessions, settings, recorder)
    assert recorder.submitted == []  # still heart-beating
    _age(sessions, RunnerRow, runner_id, "last_heartbeat", settings.heartbeat_timeout_s + 1)
    reap(sessions, settings, recorder)
    with sessions() as s:
        job, runner = jobs.get_job(s, job_id=job_id), s.get(RunnerRow, runner_id)
        assert (job.state, job.attempt, job.runner_id) == ("queued", 2, None)
        assert not runner.online and runner.current_job_id is None
        with pytest.raises(ConflictError):  # the lost runner's claim of attempt 1 is void
            jobservice.claim(s, job_id=job_id, attempt=1, runner_id=runner_id)
    assert recorder.submitted == [(job_id, 2)]


def test_late_result_of_a_requeued_job_is_refused_and_the_new_holder_counts_once(
    sessions, settings
):
    job_id, runner_id = _measuring(sessions)
    _age(sessions, RunnerRow, runner_id, "last_heartbeat", settings.heartbeat_timeout_s + 1)
    reap(sessions, settings, Recorder())
    with sessions() as s:
        with pytest.raises(ConflictError, match="does not hold"):  # lost with attempt 1
            jobservice.complete(
                s,
                job_id=job_id,
                attempt=1,
                runner_id=runner_id,
                result={"latency_ms": {"median": 2.0}},
            )
        assert jobs.result_for(s, job_id=job_id) is None
        heir, _ = runners.register_runner(s, device_class="cpu-x86_64", description={})
        heir_id = heir.id
        jobservice.claim(s, job_id=job_id, attempt=2, runner_id=heir_id)
        for median in (3.0, 4.0):  # a repeat by the holder returns the stored result
            jobservice.complete(
                s,
                job_id=job_id,
                attempt=2,
                runner_id=heir_id,
                result={"latency_ms": {"median": median}},
            )
        job = jobs.get_job(s, job_id=job_id)
        result = jobs.result_for(s, job_id=job_id)
    assert job.state == "done" and job.active_key is None
    assert (result.median_ms, result.runner_id) == (3.0, heir_id)


def test_result_for_a_job_that_failed_meanwhile_is_not_stored(sessions, settings):
    job_id, runner_id = _measuring(sessions)
    _age(sessions, JobRow, job_id, "started_at", settings.job_timeout_s + 1)
    with sessions() as s:
        job = jobs.get_job(s, job_id=job_id)  # loaded while still measuring
        s.commit()  # end the read (SQLite holds its write lock from BEGIN)
        reap(sessions, settings, Recorder())  # the job times out under the runner's feet
        with pytest.raises(ConflictError):
            record_result(
                s,
                job=job,
                model="m",
                runner_id=runner_id,
                measurement={"latency_ms": {"median": 1.0}},
            )
        assert jobs.result_for(s, job_id=job_id) is None
        assert jobs.get_job(s, job_id=job_id).state == "failed"


def test_job_past_the_timeout_fails_with_the_reason(sessions, settings):
    job_id, _ = _measuring(sessions)
    _age(sessions, JobRow, job_id, "started_at", settings.job_timeout_s + 1)
    with sessions() as s:  # claim does not set started_at; the export step does
        assert jobs.get_job(s, job_id=job_id).started_at is not None
    reap(sessions, settings, Recorder())
    with sessions() as s:
        job = jobs.get_job(s, job_id=job_id)
    assert job.state == "failed" and "timed out" in job.error


def test_recover_requeues_unfinished_jobs_but_not_live_measurements(sessions):
    live_job, _ = _measuring(sessions)
    with sessions() as s:
        waiting, _ = _job(s, key="w" * 64)
    recorder = Recorder()
    assert recover(sessions, recorder) == 1
    assert recorder.submitted == [(waiting.id, 2)]
    with sessions() as s:
        assert jobs.get_job(s, job_id=live_job).state == JobState.MEASURING.value


def test_recover_requeues_what_a_re_registered_runner_was_measuring(sessions):
    """The embedded runner keeps its id across restarts: registering again ends its old job."""
    job_id, runner_id = _measuring(sessions)
    with sessions() as s:
        runners.register_runner(s, device_class="cpu-x86_64", description={}, runner_id=runner_id)
    recorder = Recorder()
    assert recover(sessions, recorder) == 1
    assert recorder.submitted == [(job_id, 2)]
