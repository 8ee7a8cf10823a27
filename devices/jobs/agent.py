"""The process a device host runs (``latbench runner``): registers with the server, heart-beats,
and serves as a Celery worker on its device class's queue, one task at a time, each run by
``execute.run_task`` through the HTTP port. The host needs only its runtime (onnxruntime or
coremltools): no torch, no database, no shared disk."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Any

import httpx

from devices.jobs.broker import DEVICE_TASK, device_queue, make_celery, run_worker
from devices.jobs.execute import run_task
from devices.jobs.http_port import CACHE_BYTES, HttpPort
from devices.jobs.port import Host, JobTask
from exporters.errors import LatbenchError, RunnerError
from exporters.formats import DeviceClass

log = logging.getLogger(__name__)


def default_name(device_class: DeviceClass) -> str:
    """This host's name and the class: stable across restarts, and apart for two runners of
    different classes on one host (two of one class on one host need ``--name`` each)."""
    return f"{socket.gethostname()}/{device_class.value}"[:128]


def heartbeat_forever(port: HttpPort, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            port.heartbeat()
        except (httpx.HTTPError, LatbenchError) as exc:  # server restarting: keep trying
            log.warning("heartbeat failed: %s", exc)


def run_agent(
    *,
    server: str,
    device_class: DeviceClass,
    registration_token: str | None,
    broker_url: str | None,
    cache: Path,
    lock_path: Path,
    cache_bytes: int = CACHE_BYTES,
    name: str | None = None,
) -> None:
    """Register as ``name`` (default ``default_name``: a restart takes the same server row
    back), then serve the device class's queue until stopped."""
    port = HttpPort(server, cache=cache, cache_bytes=cache_bytes)
    info = port.register(device_class, registration_token, name or default_name(device_class))
    if not (broker_url or info["broker_url"]):
        raise RunnerError(
            f"{server} runs the local dispatcher, which measures on its own host "
            "only; start it with LATBENCH_DISPATCHER=celery to attach runners"
        )
    app = make_celery(broker_url or info["broker_url"])
    host = Host(lock_path=lock_path)

    @app.task(name=DEVICE_TASK)
    def device_step(payload: dict[str, Any]) -> None:
        run_task(port, JobTask(**payload), host)

    stop = threading.Event()
    threading.Thread(
        target=heartbeat_forever,
        args=(port, info["heartbeat_interval_s"], stop),
        daemon=True,
        name="latbench-heartbeat",
    ).start()
    log.info("runner %s (%s) attached to %s", port.runner_id, device_class.value, server)
    try:
        run_worker(
            app,
            queue=device_queue(device_class.value, info.get("queue_namespace", "")),
            hostname=f"runner-{port.runner_id[:8]}@%h",
        )
    finally:
        stop.set()
