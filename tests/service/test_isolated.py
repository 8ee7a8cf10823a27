"""Exports in limited worker processes (real child processes from the fork server): a model past
the memory limit fails its job with the reason while this process is untouched, a worker that
dies is replaced a bounded number of times, one past its time is killed, and stopping ends them."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from service.db import jobs
from service.dispatch.isolated import (
    WorkerCrashedError,
    WorkerError,
    WorkerProcesses,
    WorkerStopped,
)
from service.jobs import steps
from tests.service.test_db import _job


def _die(counter: Path) -> None:
    """Leave a mark, then die as the kernel's OOM killer would have it die."""
    with open(counter, "a") as out:
        out.write("x")
    os.kill(os.getpid(), signal.SIGKILL)


def _sleep_then_report_pid(pid_file: Path, seconds: float) -> None:
    pid_file.write_text(str(os.getpid()))
    time.sleep(seconds)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_worker_that_dies_is_replaced_then_given_up_on_with_the_reason(tmp_path):
    counter = tmp_path / "runs"
    workers = WorkerProcesses(memory_mb=8192, timeout_s=120, tries=3)
    with pytest.raises(WorkerCrashedError, match="signal SIGKILL.*gave up after 3 worker"):
        workers.run(_die, counter)
    assert counter.read_text() == "xxx"


def test_a_worker_past_its_time_is_killed(tmp_path):
    """The fork server started first (its imports take seconds on a loaded host), so the timed
    child has its whole timeout to write its pid."""
    warm = WorkerProcesses(memory_mb=8192, timeout_s=300, tries=1)
    warm.run(_sleep_then_report_pid, tmp_path / "warm", 0)
    pid_file = tmp_path / "pid"
    workers = WorkerProcesses(memory_mb=8192, timeout_s=10, tries=1)
    with pytest.raises(WorkerError, match="ran past 10 s"):
        workers.run(_sleep_then_report_pid, pid_file, 600)
    assert not _alive(int(pid_file.read_text()))


def test_stop_ends_a_running_worker_and_refuses_new_work(tmp_path):
    pid_file = tmp_path / "pid"
    workers = WorkerProcesses(memory_mb=8192, timeout_s=600, tries=3)
    raised: list[BaseException] = []

    def work() -> None:
        try:
            workers.run(_sleep_then_report_pid, pid_file, 600)
        except BaseException as exc:  # noqa: BLE001 - the test reads what it was
            raised.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    workers.stop()
    thread.join(30)
    assert not thread.is_alive() and isinstance(raised[0], WorkerStopped)
    assert not _alive(int(pid_file.read_text()))
    with pytest.raises(WorkerStopped):
        workers.run(_sleep_then_report_pid, pid_file, 0)


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the worker is what is tested
def test_a_model_past_the_memory_limit_fails_its_job_not_this_process(sessions, settings):
    """resnet18 at 32 x 1024^2 needs far more than 5 GiB; the job fails naming the limit."""
    spec = {"model": "resnet18", "input": {"batch": 32, "height": 1024, "width": 1024}}
    with sessions() as s:
        job, _ = _job(s, body=spec)
    settings.export_memory_mb = 5000
    task = steps.export_step(
        sessions,
        job_id=job.id,
        attempt=1,
        store_root=settings.data_dir,
        lock_path=settings.host_lock,
        workers=steps.export_workers(settings),
        beat_s=settings.heartbeat_interval_s,
    )
    with sessions() as s:
        failed = jobs.get_job(s, job_id=job.id)
    assert task is None and failed.state == "failed"
    assert "can't allocate memory" in failed.error and "LATBENCH_EXPORT_MEMORY_MB" in failed.error
    assert "5000 MiB" in failed.error
