"""The client side of a latbench server, for the CLI and the gate (``latbench upload``,
``latbench gate --server``): upload an artifact, submit a comparison, follow its job, return the
kind's own typed result. httpx only: no server module. Every refusal is raised as the error class
the server named (``exporters.errors.error_from_response``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from devices.results import ComparisonRecord
from devices.settings import MeasureSettings
from exporters import errors
from exporters.artifacts import Artifact
from exporters.formats import DeviceClass

Side = str | dict[str, Any]  # a zoo name, a ModelSpec object, or {"artifact": id} of an upload


def checked(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a successful answer; a refusal raised as the server's own error class,
    message and field."""
    if response.is_error:
        raise errors.error_from_response(response)
    return response.json()


def upload_artifact(
    client: httpx.Client, artifact: Artifact, *, name: str, token: str | None
) -> dict:
    """POST the artifact's bytes with ``client`` (on the server); its id."""
    headers = {"content-type": "application/octet-stream"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    response = client.post(
        "/artifacts", content=artifact.path.read_bytes(), params={"name": name}, headers=headers
    )
    return checked(response)


def upload_label(model: str) -> str:
    """The label the server keeps: its allowed characters only."""
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in model)[:128] or "uploaded"


def remote_compare(
    server: str,
    token: str | None,
    baseline: Side,
    candidate: Side,
    device_class: DeviceClass,
    settings: MeasureSettings,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    poll_s: float = 1.0,
    timeout_s: float = 3600.0,
    http: httpx.Client | None = None,
) -> ComparisonRecord:
    """Candidate/baseline on a runner of ``device_class`` attached to ``server``: POST /compare,
    then poll the job (``progress`` gets each new state) until it is done; a failed job raises
    RunnerError with the job's error, a job still unfinished after ``timeout_s`` RunnerError too.
    A finished identical request is answered from the server's store unless ``force``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = http or httpx.Client(base_url=server.rstrip("/"), timeout=60.0)
    body = {
        "baseline": baseline,
        "candidate": candidate,
        "devices": [device_class.value],
        "settings": settings.model_dump(mode="json", exclude_defaults=True),
        "force": force,
    }
    try:
        accepted = checked(client.post("/compare", json=body, headers=headers))
        job_id = accepted["jobs"][0]["id"]
        job = _follow(client, job_id, headers, progress, poll_s, timeout_s)
    finally:
        if http is None:
            client.close()
    if job["state"] == "failed":
        raise errors.RunnerError(f"compare job {job_id} failed: {job['error']}")
    return ComparisonRecord.model_validate(job["result"])


def post_gate_run(
    server: str, token: str | None, run: dict[str, Any], *, http: httpx.Client | None = None
) -> dict[str, Any]:
    """Store a gate run (POST /gate-runs: labels, verdicts, each pair's compare jobs); its id."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = http or httpx.Client(base_url=server.rstrip("/"), timeout=60.0)
    try:
        return checked(client.post("/gate-runs", json=run, headers=headers))
    finally:
        if http is None:
            client.close()


def _follow(
    client: httpx.Client,
    job_id: str,
    headers: dict[str, str],
    progress: Callable[[str], None] | None,
    poll_s: float,
    timeout_s: float,
) -> dict[str, Any]:
    """GET /jobs/{id} until done or failed, telling ``progress`` each state change."""
    deadline = time.monotonic() + timeout_s
    state = None
    while True:
        job = checked(client.get(f"/jobs/{job_id}", headers=headers))
        if job["state"] != state:
            state = job["state"]
            if progress is not None:
                progress(state)
        if state in ("done", "failed"):
            return job
        if time.monotonic() > deadline:
            raise errors.RunnerError(
                f"compare job {job_id} still {state} after {timeout_s:g} s; "
                f"follow it at {client.base_url}/jobs/{job_id}"
            )
        time.sleep(poll_s)
