"""The job service and the one task runner on the embedded path: the real profile kind runs
through the database port on real onnxruntime, its result is validated by the kind's schema
before it is stored, and time-driven changes run on an injected clock."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from devices.jobs.execute import run_task
from devices.jobs.kinds import get_kind
from devices.jobs.port import Host, JobTask
from devices.results import MeasurementRecord
from devices.settings import MeasureSettings
from exporters.artifacts import ArtifactStore
from exporters.errors import SpecError
from service.db import jobs, runners
from service.db.tables import utcnow
from service.dispatch.isolated import WorkerError
from service.dispatch.local import DatabasePort, local_runner_id
from service.dispatch.reaper import reap
from service.jobs import steps, submission
from tests.service.doubles import FilePort, RecordingDispatcher
from tests.service.test_db import _exported, _job
from tests.service.test_runner_host import _tiny_onnx

KEY = "0123456789abcdef" * 2 + "-onnx-fp32"
FAST = {"threads": 1, "max_seconds": 0.5, "warmup_max_seconds": 0.2}


def _task(job) -> JobTask:
    return JobTask(job.id, 1, "cpu-x86_64", "onnx", KEY, FAST)


@pytest.fixture
def queued(sessions, settings):
    """A queued job whose artifact (a tiny ONNX graph) is in the server's store."""

    def produce(path):
        _tiny_onnx(path)
        return {}

    ArtifactStore(settings.data_dir).put(KEY, produce)
    with sessions() as s:
        job = _exported(s, artifact_key=KEY)
        runners.register_runner(
            s, device_class="cpu-x86_64", description={}, runner_id=local_runner_id()
        )
    return job


def test_embedded_port_runs_the_profile_kind_and_stores_its_record(sessions, settings, queued):
    port = DatabasePort(sessions, settings.data_dir, local_runner_id())
    run_task(port, _task(queued), Host(lock_path=settings.host_lock))
    with sessions() as s:
        job = jobs.get_job(s, job_id=queued.id)
        result = jobs.result_for(s, job_id=queued.id)
        runner = s.get(runners.RunnerRow, local_runner_id())
    assert job.state == "done" and runner.current_job_id is None
    stored = MeasurementRecord.model_validate(result.measurement)
    assert stored.device["runtime"] == "onnxruntime" and stored.latency_ms.n >= 20
    assert result.median_ms == stored.latency_ms.median


def test_a_result_outside_the_kind_schema_is_refused_on_the_embedded_path(sessions, queued):
    with sessions() as s:
        steps.claim(s, job_id=queued.id, attempt=1, runner_id=local_runner_id())
        with pytest.raises(SpecError, match="result.latency_ms.median"):
            steps.complete(
                s,
                job_id=queued.id,
                attempt=1,
                runner_id=local_runner_id(),
                result={"latency_ms": {"p90": 1.0}},
            )
        assert jobs.get_job(s, job_id=queued.id).state == "measuring"
        assert jobs.result_for(s, job_id=queued.id) is None


def test_a_task_that_fails_on_the_device_posts_its_message(tmp_path):
    port = FilePort(tmp_path / "absent.onnx")
    task = JobTask("j", 1, "cpu-x86_64", "onnx", KEY, FAST)
    run_task(port, task, Host(lock_path=tmp_path / "lock"))
    assert port.results == [] and len(port.failures) == 1 and "absent.onnx" in port.failures[0]


def test_a_task_no_longer_ours_is_dropped_without_running(tmp_path):
    port = FilePort(tmp_path / "absent.onnx", claims=False)
    run_task(port, JobTask("j", 1, "cpu-x86_64", "onnx", KEY, FAST), Host(tmp_path / "lock"))
    assert port.results == port.failures == []


def test_an_unknown_kind_names_the_field():
    with pytest.raises(
        SpecError, match="kind: unknown job kind 'nope'; known: compare, predict, profile"
    ):
        get_kind("nope")


def test_a_job_past_its_timeout_fails_on_the_reapers_clock(sessions, settings, queued):
    settings.heartbeat_timeout_s = 2 * settings.job_timeout_s  # only the job timeout applies
    with sessions() as s:
        steps.claim(s, job_id=queued.id, attempt=1, runner_id=local_runner_id())
        s.get(type(queued), queued.id).started_at = utcnow()
        s.commit()
    dispatcher = RecordingDispatcher()
    reap(sessions, settings, dispatcher, now=utcnow() + timedelta(seconds=60))
    with sessions() as s:
        assert jobs.get_job(s, job_id=queued.id).state == "measuring"
    reap(
        sessions, settings, dispatcher, now=utcnow() + timedelta(seconds=settings.job_timeout_s + 1)
    )
    with sessions() as s:
        job = jobs.get_job(s, job_id=queued.id)
    assert job.state == "failed" and "LATBENCH_JOB_TIMEOUT_S" in job.error
    assert dispatcher.submitted == []


def test_an_export_message_sent_again_passes_the_exported_job_on_without_exporting(
    sessions, settings, queued
):
    workers = steps.export_workers(settings)
    workers.stop()  # any export would now raise WorkerStopped: none may be needed
    task = steps.export_step(
        sessions,
        job_id=queued.id,
        attempt=1,
        store_root=settings.data_dir,
        lock_path=settings.host_lock,
        workers=workers,
        beat_s=settings.heartbeat_interval_s,
    )
    assert (task.job_id, task.attempt, task.artifact_key) == (queued.id, 1, KEY)
    with sessions() as s:
        assert jobs.get_job(s, job_id=queued.id).state == "queued"


class HeldExport:
    """Export workers whose export waits (bounded) until its job's heartbeat has been written
    after the start, then fails: what the step wrote meanwhile is the test's to read."""

    def __init__(self, sessions, job_id: str) -> None:
        self.sessions, self.job_id, self.beats = sessions, job_id, []

    def run(self, fn, *args):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with self.sessions() as s:
                job = jobs.get_job(s, job_id=self.job_id)
            if job.beat_at > job.started_at:
                self.beats.append((job.state, job.attempt))
                break
            time.sleep(0.05)
        raise WorkerError("held by the test")


def test_an_export_beats_while_it_runs_and_stops_when_it_ends(sessions, settings):
    """The heartbeat the reaper watches (a vanished export worker's job is requeued) is written
    while the export runs, and ends with it."""
    with sessions() as s:
        job, _ = _job(s)
    held = HeldExport(sessions, job.id)
    task = steps.export_step(
        sessions,
        job_id=job.id,
        attempt=1,
        store_root=settings.data_dir,
        lock_path=settings.host_lock,
        workers=held,
        beat_s=0.05,
    )
    assert task is None and held.beats == [("exporting", 1)]
    with sessions() as s:
        failed = jobs.get_job(s, job_id=job.id)
    assert failed.state == "failed" and "held by the test" in failed.error
    assert "latbench-export-beat" not in {t.name for t in threading.enumerate()}


@pytest.mark.parametrize("ok", [True, False])
def test_a_job_whose_artifact_is_stored_and_passed_skips_the_export_queue(sessions, settings, ok):
    from exporters.formats import DeviceClass
    from exporters.spec import parse_spec
    from service.db.tables import ArtifactRow

    spec = {"model": "mobileone_s0", "input": {"height": 32, "width": 32}}
    key = f"{parse_spec(spec).content_hash()}-onnx-fp32"
    dispatcher = RecordingDispatcher()

    def submit(seed: int) -> str:
        with sessions() as s:
            done = submission.submit_profile(
                s, settings=settings, dispatcher=dispatcher, user="u", model=spec,
                devices=[DeviceClass.CPU_X86_64], formats=None,
                measure=MeasureSettings(**FAST, seed=seed), force=False,
            )  # fmt: skip
            return done.jobs[0].job.id

    first = submit(1)  # nothing stored yet: through the export step
    assert dispatcher.submitted == [(first, 1)] and dispatcher.dispatched == []

    def produce(path):
        _tiny_onnx(path)
        return {}

    ArtifactStore(settings.data_dir).put(key, produce)  # as the export step leaves it
    with sessions() as s:
        s.add(ArtifactRow(key=key, spec_hash=key.split("-")[0], format="onnx", precision="fp32",
                          path="p", ok=ok, report={}))  # fmt: skip
        s.commit()
    second = submit(2)
    if ok:
        assert [(t.job_id, t.artifact_key) for t in dispatcher.dispatched] == [(second, key)]
        assert dispatcher.submitted == [(first, 1)]
    else:  # an export that failed its checks is never measured: the export step says why
        assert dispatcher.dispatched == [] and dispatcher.submitted[-1] == (second, 1)
