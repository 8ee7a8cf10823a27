"""The runner agent's side of the protocol against the real app: registration, artifact transfer
(files, and directory artifacts such as .mlpackage as tar) with its checksum, stale claims."""

from __future__ import annotations

import tarfile
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from devices.jobs.execute import run_task
from devices.jobs.http_port import HttpPort
from devices.jobs.port import Host, JobTask
from exporters.artifacts import ArtifactStore
from exporters.errors import AuthError, NotFoundError
from exporters.formats import DeviceClass
from service import retention
from service.app import create_app
from service.db import jobs, runners
from service.db.tables import RunnerRow, utcnow
from tests.service.test_compare import matmul_chain
from tests.service.test_db import _exported

SPEC_HASH = "0123456789abcdef0123456789abcdef"


def _task(fmt: str, precision: str, attempt: int = 1, job_id: str = "j") -> JobTask:
    return JobTask(
        job_id=job_id,
        attempt=attempt,
        device_class="cpu-x86_64",
        format=fmt,
        artifact_key=f"{SPEC_HASH}-{fmt}-{precision}",
        settings={},
    )


def _key(task: JobTask) -> tuple[JobTask, str]:
    """A task and the key of its one artifact, as ``run_task`` hands them to the port."""
    return task, task.artifact_key


@pytest.fixture
def agent(settings, tmp_path):
    with TestClient(create_app(settings)) as http:
        client = HttpPort("http://testserver", cache=tmp_path / "cache", http=http)
        client.register(DeviceClass.CPU_X86_64, registration_token=None)
        yield client, ArtifactStore(settings.data_dir)


def _held(client: HttpPort, fmt: str, precision: str) -> JobTask:
    """The task of a job exported with that artifact and claimed by ``client`` (a runner may
    fetch only the artifact of the job it holds)."""
    with client.http.app.state.sessions() as session:
        job = _exported(session, artifact_key=f"{SPEC_HASH}-{fmt}-{precision}")
    task = _task(fmt, precision, job_id=job.id)
    assert client.claim(task)
    return task


def test_file_artifact_arrives_intact_and_is_cached(agent, tmp_path):
    client, store = agent
    payload = bytes(range(256)) * 1000

    def produce(path):
        path.write_bytes(payload)
        return {}

    store.put(f"{SPEC_HASH}-onnx-fp32", produce)
    task = _held(client, "onnx", "fp32")
    path = client.fetch_artifact(*_key(task))
    assert path.name.endswith(".onnx") and path.read_bytes() == payload
    assert client.fetch_artifact(*_key(task)) == path


def test_directory_artifact_travels_as_tar(agent, tmp_path):
    client, store = agent

    def produce(path):
        (path / "Data").mkdir(parents=True)
        (path / "Manifest.json").write_text('{"ok": true}')
        (path / "Data" / "weights.bin").write_bytes(b"\x01\x02" * 500)
        return {}

    store.put(f"{SPEC_HASH}-coreml-fp16", produce)
    path = client.fetch_artifact(*_key(_held(client, "coreml", "fp16")))
    assert path.name.endswith(".mlpackage") and path.is_dir()
    assert (path / "Manifest.json").read_text() == '{"ok": true}'
    assert (path / "Data" / "weights.bin").read_bytes() == b"\x01\x02" * 500


def test_claim_of_an_unknown_or_stale_job_is_declined(agent):
    client, _ = agent
    assert client.claim(_task("onnx", "fp32", job_id="nosuchjob")) is False


def test_failed_artifact_fetch_keeps_the_server_message(agent, tmp_path):
    client, _ = agent
    with pytest.raises(NotFoundError, match="holds no job with artifact"):  # the server's class
        client.fetch_artifact(*_key(_task("onnx", "fp32")))
    task = _held(client, "onnx", "fp32")
    with pytest.raises(NotFoundError, match="no artifact"):  # held, but not in the store
        client.fetch_artifact(*_key(task))
    client.http.headers["Authorization"] = "Bearer wrong"
    with pytest.raises(AuthError, match="wrong token"):
        client.fetch_artifact(*_key(task))
    assert not list((tmp_path / "cache").iterdir())


def test_failed_extraction_leaves_nothing_that_looks_cached(agent, tmp_path):
    client, store = agent

    def produce(path):  # a link out of the package: the "data" filter refuses it mid-way
        path.mkdir(parents=True)
        (path / "Manifest.json").write_text("{}")
        (path / "zlink").symlink_to("/etc/passwd")
        return {}

    store.put(f"{SPEC_HASH}-coreml-fp16", produce)
    cache = tmp_path / "cache"
    task = _held(client, "coreml", "fp16")
    for _ in range(2):  # the second fetch tries again instead of serving a partial directory
        with pytest.raises(tarfile.TarError):
            client.fetch_artifact(*_key(task))
    assert not list(cache.iterdir())


def test_an_agent_whose_row_was_pruned_registers_again_and_measures_a_job(settings, tmp_path):
    """gc pruned the row of a runner silent past the retention (a host asleep for a week): its
    next call is answered 404 naming ``runner_id``, so it registers again under its name and
    measures the job it was sent, instead of failing every call from then on."""
    with TestClient(create_app(settings)) as http:
        port = HttpPort("http://testserver", cache=tmp_path / "cache", http=http)
        port.register(DeviceClass.CPU_X86_64, registration_token=None, name="lab-host")
        pruned = port.runner_id
        sessions = http.app.state.sessions
        with sessions() as s:
            row = s.get(RunnerRow, pruned)
            row.last_heartbeat = utcnow() - timedelta(seconds=settings.runner_retention_s + 60)
            s.commit()
            assert retention.prune_runners(s, settings) == [pruned]
        key = f"{SPEC_HASH}-onnx-fp32"
        ArtifactStore(settings.data_dir).put(key, lambda path: matmul_chain(path, 1) or {})
        with sessions() as s:
            job_id = _exported(s, artifact_key=key).id
        fast = {"threads": 1, "max_seconds": 0.5, "warmup_max_seconds": 0.1}
        task = JobTask(job_id, 1, "cpu-x86_64", "onnx", key, fast)
        run_task(port, task, Host(lock_path=settings.host_lock))
        with sessions() as s:
            job, result = jobs.get_job(s, job_id=job_id), jobs.result_for(s, job_id=job_id)
            assert job.state == "done", job.error
            assert result is not None and result.runner_id == port.runner_id != pruned
            assert [(r.id, r.name) for r in runners.list_runners(s)] == [
                (port.runner_id, "lab-host")
            ]
        port.heartbeat()  # the new registration is the one in use
