"""Server-side housekeeping, run periodically by the worker process whatever the dispatcher:
runners that stopped heart-beating go offline and their in-flight job returns to the queue, and
so does a job whose export stopped heart-beating (its export worker vanished); jobs
past the timeout or the queue age fail; a job waiting long is sent again (a lost message strands
none); on startup, unfinished jobs are queued again (none is lost to a restart)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from service.db import jobs, runners
from service.db.jobs import JobState
from service.db.tables import utcnow
from service.jobs import steps
from service.jobs.ports import Dispatcher, Sessions
from service.jobs.transitions import STARTED
from service.settings import Settings

log = logging.getLogger(__name__)


def reap(
    sessions: Sessions,
    settings: Settings,
    dispatcher: Dispatcher,
    now: datetime | None = None,
    sent: dict[str, datetime] | None = None,
    seeing_since: datetime | None = None,
) -> None:
    """One pass; ``now`` (naive UTC, default the clock) lets a test move time instead of waiting;
    ``sent`` remembers across passes when each waiting job was last sent again. Silence (of a
    runner, of an export) is judged only where the database has been seen since
    ``seeing_since`` for a whole LATBENCH_HEARTBEAT_TIMEOUT_S (None: always): while it was
    away nothing could beat, so a beat missed then says nothing of who is gone."""
    now = now or utcnow()
    heard_since = now - timedelta(seconds=settings.heartbeat_timeout_s)
    with sessions() as session:
        _redispatch(session, settings, dispatcher, now, {} if sent is None else sent)
        if seeing_since is None or seeing_since <= heard_since:
            _reap_silent(session, settings, dispatcher, heard_since)
        for job in jobs.overdue_jobs(
            session, started_before=now - timedelta(seconds=settings.job_timeout_s)
        ):
            step = "measurement" if job.state == JobState.MEASURING.value else "export"
            steps.fail_in(
                session,
                job_id=job.id,
                attempt=job.attempt,
                error=f"{step} timed out after {settings.job_timeout_s:g} s "
                "(LATBENCH_JOB_TIMEOUT_S)",
            )
        for job in jobs.stale_queued_jobs(
            session, submitted_before=now - timedelta(seconds=settings.max_queue_age_s)
        ):
            steps.fail_in(
                session,
                job_id=job.id,
                attempt=job.attempt,
                error=f"no {job.device_class} runner took the job within "
                f"{settings.max_queue_age_s:g} s of its submission; attach one and submit again "
                "(LATBENCH_MAX_QUEUE_AGE_S)",
            )


def _reap_silent(
    session: Session, settings: Settings, dispatcher: Dispatcher, heard_since: datetime
) -> None:
    """Runners and exports not heard from since ``heard_since``: offline, and their job queued
    again under a new attempt (or failed at the attempt cap)."""
    for runner in runners.mark_stale_offline(session, cutoff=heard_since):
        steps.release_runner_job(
            session,
            runner,
            dispatcher,
            max_attempts=settings.max_attempts,
            reason=f"runner {runner.id} went silent while measuring it",
        )
    for job in jobs.silent_exports(session, beat_before=heard_since):
        reason = (
            f"its export worker went silent (no heartbeat for "
            f"{settings.heartbeat_timeout_s:g} s: LATBENCH_HEARTBEAT_TIMEOUT_S)"
        )
        if steps.requeue(
            session, job, dispatcher, max_attempts=settings.max_attempts, reason=reason
        ):
            log.warning("the export of job %s went silent; requeued", job.id)


def _redispatch(
    session: Session,
    settings: Settings,
    dispatcher: Dispatcher,
    now: datetime,
    sent: dict[str, datetime],
) -> None:
    """Send the message of each job queued for LATBENCH_REDISPATCH_S since it was submitted or
    last sent again: a broker that lost its messages (Redis restarted without persistence)
    cannot strand a job. A duplicate changes nothing: the export step passes an exported job on
    without exporting again, and only one claim of an attempt succeeds."""
    cutoff = now - timedelta(seconds=settings.redispatch_s)
    waiting = jobs.stale_queued_jobs(session, submitted_before=cutoff)
    for stale in set(sent) - {job.id for job in waiting}:
        del sent[stale]
    for job in waiting:
        if sent.get(job.id, job.created_at) < cutoff:
            dispatcher.submit(job.id, job.attempt)
            sent[job.id] = now


def started_jobs(sessions: Sessions) -> set[tuple[str, int]]:
    """The started attempts (``transitions.STARTED``: exporting, measuring) as this worker
    starts, read before its dispatcher runs anything: what the restart may have interrupted."""
    with sessions() as session:
        return {
            (j.id, j.attempt) for j in jobs.active_jobs(session) if JobState(j.state) in STARTED
        }


def recover(
    sessions: Sessions,
    settings: Settings,
    dispatcher: Dispatcher,
    started: set[tuple[str, int]] | None = None,
) -> int:
    """Queue every attempt the restart interrupted (of ``started``, read before the dispatcher
    started: default, now) again under a new attempt: exporting, or measuring by no online
    runner; a job that has used its attempts fails instead (a job that crashes the server is not
    retried on every start). A job still measured by an online runner is left to it (the reaper
    takes it if the runner dies), and so is one this start's dispatcher already took, and, with
    Celery, an export still beating: its export worker may run on another host, which this
    restart did not stop (the reaper takes it if the beat stops). A queued
    job never started: it is sent again at its attempt (a lost message strands nothing; a
    duplicate changes nothing) and spends none, so restarts never fail jobs that never ran. The
    count requeued. Run after the dispatcher has started: the embedded runner re-registers
    first, which ends what it held before the restart."""
    started = started_jobs(sessions) if started is None else started
    heard_since = utcnow() - timedelta(seconds=settings.heartbeat_timeout_s)
    exports_elsewhere = settings.dispatcher == "celery"
    count = 0
    with sessions() as session:
        held = {r.current_job_id for r in runners.list_runners(session) if r.online}
        for job in jobs.active_jobs(session):
            if job.state == JobState.QUEUED.value:
                dispatcher.submit(job.id, job.attempt)
                continue
            if (job.id, job.attempt) not in started:
                continue
            if job.state == JobState.MEASURING.value and job.id in held:
                continue
            beating = job.beat_at is not None and job.beat_at >= heard_since
            if job.state == JobState.EXPORTING.value and exports_elsewhere and beating:
                continue
            count += steps.requeue(
                session,
                job,
                dispatcher,
                max_attempts=settings.max_attempts,
                reason=f"the server stopped while the job was {job.state}",
            )
    return count


class Reaper:
    def __init__(self, sessions: Sessions, settings: Settings, dispatcher: Dispatcher) -> None:
        self._args = (sessions, settings, dispatcher)
        self._sent: dict[str, datetime] = {}
        self._seeing_since: datetime | None = None
        self._interval = settings.reaper_interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="latbench-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_pass()

    def run_pass(self, now: datetime | None = None) -> None:
        """One pass of ``reap``, which judges silence only after a whole heartbeat window of
        seeing the database: since this reaper started, or since its last pass that failed
        (a database outage: nothing could beat meanwhile, and a 30 s outage would otherwise
        requeue every running job)."""
        now = now or utcnow()
        if self._seeing_since is None:
            self._seeing_since = now
        try:
            reap(*self._args, now=now, sent=self._sent, seeing_since=self._seeing_since)
        except Exception:  # keep reaping: a transient DB error must not end housekeeping
            self._seeing_since = None
            log.exception("reaper pass failed")
