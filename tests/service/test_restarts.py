"""The one restart rule (``service.restarts``) and both processes that follow it: the supervisor of
``latbench serve`` and the Celery dispatcher's export workers, with real processes that die at
their start."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from itertools import pairwise

import pytest

from service import restarts, workers
from service.dispatch import celery_dispatch
from service.restarts import CANNOT_WORK, MAX_QUICK_DEATHS, QUICK_DEATH_S, Restarts


def test_a_process_that_keeps_dying_at_its_start_waits_longer_each_time_then_is_given_up():
    rule = Restarts()
    delays = [rule.ended(0.1) for _ in range(MAX_QUICK_DEATHS)]
    assert delays == [1.0, 2.0, 4.0, 8.0, None]


def test_a_run_that_lasted_starts_the_count_again():
    rule = Restarts()
    assert [rule.ended(0.1) for _ in range(3)] == [1.0, 2.0, 4.0]
    assert rule.ended(QUICK_DEATH_S + 1) == 1.0 and rule.quick_deaths == 0
    assert rule.ended(0.1) == 1.0  # the first quick death of a new count


@pytest.fixture
def own_signals():
    """The supervisor and the worker install SIGTERM/SIGINT handlers: pytest's come back."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


@pytest.fixture
def fast_restarts(monkeypatch):
    monkeypatch.setattr(restarts, "RESTART_DELAY_S", 0.1)
    monkeypatch.setattr(celery_dispatch, "POLL_S", 0.02)


def test_export_workers_that_die_at_their_start_are_started_less_often_then_fail_the_dispatcher(
    settings, fast_restarts, monkeypatch
):
    starts: list[float] = []

    def dying() -> subprocess.Popen[bytes]:
        starts.append(time.monotonic())
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])

    dispatcher = celery_dispatch.CeleryDispatcher(settings.model_copy(update={"export_workers": 1}))
    monkeypatch.setattr(dispatcher, "_spawn", dying)
    dispatcher.start()
    try:
        deadline = time.monotonic() + 30
        while dispatcher.failure() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        failure = dispatcher.failure()
    finally:
        dispatcher.stop()
    assert failure is not None and "5 times right after its start (last exit 3)" in failure
    assert len(starts) == MAX_QUICK_DEATHS  # the first start, then one per death but the last
    gaps = [later - earlier for earlier, later in pairwise(starts)]
    assert all(gap >= wait for gap, wait in zip(gaps, [0.1, 0.2, 0.4, 0.8], strict=True)), gaps


def _dies_at_once() -> None:
    raise SystemExit(7)


def _gives_up() -> None:
    raise SystemExit(CANNOT_WORK)


def test_the_supervisor_stops_the_service_when_a_part_keeps_dying_at_its_start(
    fast_restarts, own_signals
):
    part = workers.Part("worker", _dies_at_once, ())
    status = workers.Supervisor([part]).run()
    assert status == 1
    assert part.restarts.quick_deaths == MAX_QUICK_DEATHS
    assert part.process is not None and part.process.exitcode == 7


def test_a_part_that_cannot_work_stops_the_service_without_a_restart(own_signals):
    """The worker ends with CANNOT_WORK when its export workers cannot start: starting it again
    would start them again too, so the supervisor stops at once."""
    part = workers.Part("worker", _gives_up, ())
    status = workers.Supervisor([part]).run()
    assert status == 1
    assert part.restarts.quick_deaths == 0  # never counted as a death to start again after
    assert part.process is not None and part.process.exitcode == CANNOT_WORK


def test_the_worker_ends_with_cannot_work_when_its_dispatcher_fails(
    settings, monkeypatch, own_signals
):
    from service import dispatch
    from tests.service.doubles import RecordingDispatcher

    class Failing(RecordingDispatcher):
        def failure(self) -> str | None:
            return "an export worker ended 5 times right after its start (last exit 3)"

    monkeypatch.setattr(dispatch, "worker_dispatcher", lambda *_: Failing.this_host())
    with pytest.raises(SystemExit) as ended:
        workers.run_worker(settings)
    assert ended.value.code == CANNOT_WORK
