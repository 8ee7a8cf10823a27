"""Offline detection, requeue, job timeout and restart recovery, with a recording dispatcher
(a test double standing in for the queue, as DESIGN.md allows in dispatch unit tests)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from exporters.errors import ConflictError
from service.db import jobs, runners
from service.db.jobs import JobState
from service.db.results import record_result
from service.db.tables import JobRow, RunnerRow, utcnow
from service.dispatch.reaper import Reaper, reap, recover, started_jobs
from service.jobs import steps
from service.jobs.transitions import Event, beat_export, move
from tests.service.test_db import _exported, _job, _mark_exported


class Recorder:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, int]] = []

    def submit(self, job_id: str, attempt: int) -> None:
        self.submitted.append((job_id, attempt))


def _measuring(sessions):
    """A job claimed by a registered runner, as after export."""
    with sessions() as s:
        job = _exported(s)
        runner, _ = runners.register_runner(s, device_class="cpu-x86_64", description={})
        steps.claim(s, job_id=job.id, attempt=1, runner_id=runner.id)
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
            steps.claim(s, job_id=job_id, attempt=1, runner_id=runner_id)
    assert recorder.submitted == [(job_id, 2)]


def test_late_result_of_a_requeued_job_is_refused_and_the_new_holder_counts_once(
    sessions, settings
):
    job_id, runner_id = _measuring(sessions)
    _age(sessions, RunnerRow, runner_id, "last_heartbeat", settings.heartbeat_timeout_s + 1)
    reap(sessions, settings, Recorder())
    with sessions() as s:
        with pytest.raises(ConflictError, match="does not hold"):  # lost with attempt 1
            steps.complete(
                s,
                job_id=job_id,
                attempt=1,
                runner_id=runner_id,
                result={"latency_ms": {"median": 2.0}},
            )
        assert jobs.result_for(s, job_id=job_id) is None
        heir, _ = runners.register_runner(s, device_class="cpu-x86_64", description={})
        heir_id = heir.id
        with pytest.raises(ConflictError, match="artifact exported"):  # not re-exported yet
            steps.claim(s, job_id=job_id, attempt=2, runner_id=heir_id)
        _mark_exported(s, job_id, attempt=2)
        steps.claim(s, job_id=job_id, attempt=2, runner_id=heir_id)
        for median in (3.0, 4.0):  # a repeat by the holder returns the stored result
            steps.complete(
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
    _age(sessions, JobRow, job_id, "measure_started_at", settings.job_timeout_s + 1)
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
    _age(sessions, JobRow, job_id, "measure_started_at", settings.job_timeout_s + 1)
    reap(sessions, settings, Recorder())
    with sessions() as s:
        job = jobs.get_job(s, job_id=job_id)
    assert job.state == "failed" and "measurement timed out" in job.error


def test_the_timeout_counts_from_the_claim_not_from_submission_or_export(sessions, settings):
    """A job exported and then queued longer than the timeout is measured, not failed."""
    job_id, _ = _measuring(sessions)
    for column in ("created_at", "started_at"):
        _age(sessions, JobRow, job_id, column, 3 * settings.job_timeout_s)
    reap(sessions, settings, Recorder())
    with sessions() as s:
        assert jobs.get_job(s, job_id=job_id).state == "measuring"


def test_an_export_past_the_timeout_fails_naming_the_step(sessions, settings):
    with sessions() as s:
        job, _ = _job(s)
        move(s, Event.START_EXPORT, job_id=job.id, attempt=1, started_at=utcnow())
    _age(sessions, JobRow, job.id, "started_at", settings.job_timeout_s + 1)
    reap(sessions, settings, Recorder())
    with sessions() as s:
        failed = jobs.get_job(s, job_id=job.id)
    assert failed.state == "failed" and "export timed out" in failed.error


def test_a_job_queued_past_the_queue_age_fails_with_its_own_reason(sessions, settings):
    with sessions() as s:
        waiting = _exported(s)
    settings.max_queue_age_s = 600
    _age(sessions, JobRow, waiting.id, "created_at", 599)
    reap(sessions, settings, Recorder())
    with sessions() as s:
        assert jobs.get_job(s, job_id=waiting.id).state == "queued"
    _age(sessions, JobRow, waiting.id, "created_at", 601)
    reap(sessions, settings, Recorder())
    with sessions() as s:
        job = jobs.get_job(s, job_id=waiting.id)
    assert job.state == "failed" and "LATBENCH_MAX_QUEUE_AGE_S" in job.error
    assert "no cpu-x86_64 runner took the job" in job.error


def test_recover_requeues_interrupted_jobs_but_not_live_measurements(sessions, settings):
    live_job, _ = _measuring(sessions)
    with sessions() as s:
        exporting, _ = _job(s, key="w" * 64)
        move(s, Event.START_EXPORT, job_id=exporting.id, attempt=1)
    recorder = Recorder()
    assert recover(sessions, settings, recorder) == 1
    assert recorder.submitted == [(exporting.id, 2)]
    with sessions() as s:
        assert jobs.get_job(s, job_id=live_job).state == JobState.MEASURING.value


def test_restarts_spend_no_attempt_of_a_job_that_never_started(sessions, settings):
    """Queued (never exported, or exported and waiting for a runner): nothing of it ran, so a
    restart only sends it again; as many restarts as the attempt cap leave it as it was."""
    with sessions() as s:
        fresh, _ = _job(s, key="f" * 64)
        waiting = _exported(s)
    recorder = Recorder()
    for _ in range(settings.max_attempts + 1):
        assert recover(sessions, settings, recorder) == 0
    with sessions() as s:
        rows = [jobs.get_job(s, job_id=j.id) for j in (fresh, waiting)]
        assert [(r.state, r.attempt) for r in rows] == [("queued", 1), ("queued", 1)]
        assert rows[1].artifact_key == waiting.artifact_key  # still exported: no export again
        runner, _ = runners.register_runner(s, device_class="cpu-x86_64", description={})
        steps.claim(s, job_id=waiting.id, attempt=1, runner_id=runner.id)  # the message sent
    assert set(recorder.submitted) == {(fresh.id, 1), (waiting.id, 1)}


def test_recovery_leaves_what_this_start_already_took(sessions, settings):
    """The worker's dispatcher starts before recovery (its runner re-registers first): an export
    it began meanwhile was not interrupted by the restart and is not requeued."""
    with sessions() as s:
        job, _ = _job(s)
    before = started_jobs(sessions)  # read as the worker starts: nothing was running
    with sessions() as s:
        move(s, Event.START_EXPORT, job_id=job.id, attempt=1)  # this start's export worker
    assert recover(sessions, settings, Recorder(), before) == 0
    with sessions() as s:
        assert (jobs.get_job(s, job_id=job.id).state, job.attempt) == ("exporting", 1)


def _beating_and_silent(sessions, settings):
    """Two jobs exporting: one beat just now, one silent past the heartbeat timeout."""
    with sessions() as s:
        beating, _ = _job(s, key="b" * 64)
        silent, _ = _job(s, key="s" * 64)
        for job in (beating, silent):
            move(s, Event.START_EXPORT, job_id=job.id, attempt=1, started_at=utcnow())
            assert beat_export(s, job_id=job.id, attempt=1)
    _age(sessions, JobRow, silent.id, "beat_at", settings.heartbeat_timeout_s + 1)
    return beating, silent


def test_an_export_whose_worker_stopped_beating_is_requeued(sessions, settings):
    """An export worker that vanished (SIGKILL, its host gone) leaves its job exporting with a
    heartbeat that stops: past LATBENCH_HEARTBEAT_TIMEOUT_S the reaper queues it again under a
    new attempt, long before the job timeout; a beating export is left alone."""
    beating, silent = _beating_and_silent(sessions, settings)
    recorder = Recorder()
    reap(sessions, settings, recorder)
    with sessions() as s:
        requeued, running = (jobs.get_job(s, job_id=j.id) for j in (silent, beating))
        assert (requeued.state, requeued.attempt) == ("queued", 2)
        assert (running.state, running.attempt) == ("exporting", 1)
        assert not beat_export(s, job_id=silent.id, attempt=1)  # the old attempt's worker
    assert recorder.submitted == [(silent.id, 2)]


def test_a_silent_export_on_its_last_attempt_fails_the_job(sessions, settings):
    settings.max_attempts = 1
    with sessions() as s:
        job, _ = _job(s)
        move(s, Event.START_EXPORT, job_id=job.id, attempt=1, started_at=utcnow())
        beat_export(s, job_id=job.id, attempt=1)
    _age(sessions, JobRow, job.id, "beat_at", settings.heartbeat_timeout_s + 1)
    recorder = Recorder()
    reap(sessions, settings, recorder)
    with sessions() as s:
        failed = jobs.get_job(s, job_id=job.id)
    assert recorder.submitted == [] and failed.state == "failed"
    assert "export worker went silent" in failed.error and "gave up after 1" in failed.error


def test_recover_requeues_what_a_re_registered_runner_was_measuring(sessions, settings):
    """The embedded runner keeps its id across restarts: registering again ends its old job."""
    job_id, runner_id = _measuring(sessions)
    with sessions() as s:
        runners.register_runner(s, device_class="cpu-x86_64", description={}, runner_id=runner_id)
    recorder = Recorder()
    assert recover(sessions, settings, recorder) == 1
    assert recorder.submitted == [(job_id, 2)]


def test_a_job_interrupted_max_attempts_times_is_failed_with_the_reason_not_requeued(
    sessions, settings
):
    """Poison-job quarantine across restarts: each start finds it unfinished and counts."""
    settings.max_attempts = 2
    with sessions() as s:
        job, _ = _job(s)
        move(s, Event.START_EXPORT, job_id=job.id, attempt=1)
    recorder = Recorder()
    assert recover(sessions, settings, recorder) == 1  # first restart: attempt 2
    with sessions() as s:
        move(s, Event.START_EXPORT, job_id=job.id, attempt=2)
    assert recover(sessions, settings, recorder) == 0  # second: attempts used up
    with sessions() as s:
        failed = jobs.get_job(s, job_id=job.id)
    assert recorder.submitted == [(job.id, 2)]
    assert failed.state == "failed" and "gave up after 2 attempt(s)" in failed.error
    assert "server stopped while the job was exporting" in failed.error


def test_a_runner_going_silent_on_the_last_attempt_fails_the_job(sessions, settings):
    settings.max_attempts = 1
    job_id, runner_id = _measuring(sessions)
    _age(sessions, RunnerRow, runner_id, "last_heartbeat", settings.heartbeat_timeout_s + 1)
    recorder = Recorder()
    reap(sessions, settings, recorder)
    with sessions() as s:
        job = jobs.get_job(s, job_id=job_id)
    assert recorder.submitted == [] and job.state == "failed"
    assert f"runner {runner_id} went silent" in job.error


def test_a_runner_claims_only_exported_jobs_of_its_class(sessions):
    with sessions() as s:
        unexported, _ = _job(s, key="u" * 64)
        ready = _exported(s)
        arm, _ = runners.register_runner(s, device_class="cpu-arm64", description={})
        x86, _ = runners.register_runner(s, device_class="cpu-x86_64", description={})
        with pytest.raises(ConflictError, match="is for device class 'cpu-x86_64'"):
            steps.claim(s, job_id=ready.id, attempt=1, runner_id=arm.id)
        with pytest.raises(ConflictError, match="artifact exported"):
            steps.claim(s, job_id=unexported.id, attempt=1, runner_id=x86.id)
        assert jobs.get_job(s, job_id=unexported.id).state == "queued"
        steps.claim(s, job_id=ready.id, attempt=1, runner_id=x86.id)
        x86_id = x86.id
    with sessions() as s:
        assert jobs.get_job(s, job_id=ready.id).runner_id == x86_id


def test_a_job_waiting_past_the_redispatch_interval_is_sent_again_once_per_interval(
    sessions, settings
):
    """A broker that lost the message (Redis restarted without persistence) strands no job."""
    settings.redispatch_s = 60
    with sessions() as s:
        waiting = _exported(s)
    recorder, sent = Recorder(), {}
    start = utcnow()
    for seconds in (0, 61, 62, 100, 122):
        reap(sessions, settings, recorder, now=start + timedelta(seconds=seconds), sent=sent)
    assert recorder.submitted == [(waiting.id, 1), (waiting.id, 1)]  # at 61 s and at 122 s


_NO_LINK = {  # a fault between the claim's two writes: the runner's link to its job is refused
    "sqlite": [
        (
            "CREATE TRIGGER no_link BEFORE UPDATE OF current_job_id ON runners WHEN "
            "NEW.current_job_id IS NOT NULL BEGIN SELECT RAISE(ABORT, 'link refused'); END"
        )
    ],
    "postgresql": [
        (
            "CREATE FUNCTION no_link() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'link refused'; END $$"
        ),
        (
            "CREATE TRIGGER no_link BEFORE UPDATE OF current_job_id ON runners FOR EACH ROW "
            "WHEN (NEW.current_job_id IS NOT NULL) EXECUTE FUNCTION no_link()"
        ),
    ],
}
_DROP_LINK_FAULT = {
    "sqlite": "DROP TRIGGER no_link",
    "postgresql": "DROP TRIGGER no_link ON runners",
}


def test_a_claim_and_its_runner_link_commit_together_or_not_at_all(sessions):
    with sessions() as s:
        job = _exported(s)
        runner, _ = runners.register_runner(s, device_class="cpu-x86_64", description={})
        runner_id = runner.id
        for statement in _NO_LINK[s.get_bind().dialect.name]:
            s.execute(text(statement))
        s.commit()
    with sessions() as s, pytest.raises(DBAPIError, match="link refused"):
        steps.claim(s, job_id=job.id, attempt=1, runner_id=runner_id)
    with sessions() as s:  # no half state: the job is not claimed by a runner that lacks it
        row = jobs.get_job(s, job_id=job.id)
        assert (row.state, row.runner_id, row.measure_started_at) == ("queued", None, None)
        assert s.get(RunnerRow, runner_id).current_job_id is None
        s.execute(text(_DROP_LINK_FAULT[s.get_bind().dialect.name]))
        s.commit()
        steps.claim(s, job_id=job.id, attempt=1, runner_id=runner_id)
    with sessions() as s:
        row = jobs.get_job(s, job_id=job.id)
        assert (row.state, row.runner_id) == ("measuring", runner_id)
        assert s.get(RunnerRow, runner_id).current_job_id == job.id


@pytest.mark.parametrize("dispatcher", ["local", "celery"])
def test_recovery_leaves_a_beating_celery_export_to_its_worker(sessions, settings, dispatcher):
    """With Celery an export worker may run on another host, which a restart of the worker
    process does not stop: an export still beating is left to it (the reaper takes it should the
    beat stop), one silent past the heartbeat timeout is requeued. The embedded dispatcher's
    exports ran in the restarted process's children: requeued at once, beating or not."""
    settings.dispatcher = dispatcher
    beating, silent = _beating_and_silent(sessions, settings)
    recorder = Recorder()
    recover(sessions, settings, recorder)
    left = [] if dispatcher == "local" else [beating.id]
    assert sorted(recorder.submitted) == sorted(
        (j.id, 2) for j in (beating, silent) if j.id not in left
    )
    with sessions() as s:
        states = {j.id: jobs.get_job(s, job_id=j.id).state for j in (beating, silent)}
    assert states == {j.id: "exporting" if j.id in left else "queued" for j in (beating, silent)}


def test_silence_during_a_database_outage_costs_no_attempt(sessions, settings):
    """A runner and an export that last beat before an outage as long as the heartbeat timeout
    could not beat during it: the reaper's first pass after the database is back leaves them;
    only a whole heartbeat window of seeing the database, without a beat, is silence."""
    from sqlalchemy.exc import OperationalError

    measured, runner_id = _measuring(sessions)
    with sessions() as s:
        exporting, _ = _job(s, key="e" * 64)
        move(s, Event.START_EXPORT, job_id=exporting.id, attempt=1, started_at=utcnow())
        beat_export(s, job_id=exporting.id, attempt=1)
    down = [False]

    def flaky():
        if down[0]:
            raise OperationalError("SELECT 1", None, ConnectionRefusedError("database down"))
        return sessions()

    recorder = Recorder()
    reaper = Reaper(flaky, settings, recorder)
    window = timedelta(seconds=settings.heartbeat_timeout_s)
    start = utcnow()
    reaper.run_pass(start)  # seeing the database from here
    down[0] = True
    reaper.run_pass(start + window)  # the outage: this pass fails
    down[0] = False
    _age(sessions, RunnerRow, runner_id, "last_heartbeat", settings.heartbeat_timeout_s + 1)
    _age(sessions, JobRow, exporting.id, "beat_at", settings.heartbeat_timeout_s + 1)
    back = utcnow()
    reaper.run_pass(back)  # back: both look silent by the clock, but nothing could beat
    assert recorder.submitted == []
    with sessions() as s:
        assert jobs.get_job(s, job_id=measured).state == "measuring"
        assert jobs.get_job(s, job_id=exporting.id).state == "exporting"
    reaper.run_pass(back + window)  # a whole window seen since, and still no beat: silence
    assert sorted(recorder.submitted) == sorted([(measured, 2), (exporting.id, 2)])
