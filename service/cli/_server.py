"""`--server URL` (or LATBENCH_SERVER) on `profile` and `compare`: the same request sent to a
latbench server, whose runner of the device class measures it. Zoo names and spec files go as
specs; a `python:` factory or a ready artifact is built or validated here and uploaded first
(the server never runs a user's code)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from exporters.formats import DeviceClass, ExportFormat

ServerOpt = Annotated[
    str | None,
    typer.Option(
        envvar="LATBENCH_SERVER",
        help="measure on this latbench server's runner of the device class instead of here",
    ),
]
TokenOpt = Annotated[
    str | None, typer.Option(envvar="LATBENCH_API_TOKEN", help="the server's API token")
]


def remote_side(server: str, token: str | None, ref: str, device_class: DeviceClass) -> Any:
    """What the server is sent for ``ref``: a zoo name, a spec document, or ``{"artifact": id}``
    of the artifact built (or validated) here and uploaded."""
    from exporters.spec import PYTHON_SOURCE, SPEC_SUFFIXES, read_spec_file
    from service.cli import data_dir, host_lock_path
    from service.gate.compare import Remote

    document: Any = read_spec_file(Path(ref)) if Path(ref).suffix in SPEC_SUFFIXES else ref
    model = document if isinstance(document, str) else str(document.get("model", ""))
    artifact = Path(ref).suffix in {f.suffix for f in ExportFormat}
    if not artifact and not model.startswith(PYTHON_SOURCE):
        return document
    from service import pipeline

    done = pipeline.materialize(
        ref, device_class.formats[0], store_root=data_dir(), lock_path=host_lock_path()
    )
    return {"artifact": Remote(server, token, False).upload(done.artifact, label=done.model)}


def remote_profile(
    server: str, token: str | None, ref: str, device_class: DeviceClass, settings: Any
) -> dict[str, Any]:
    """POST /profile, follow the job; the stored result (``ResultPublic``) or the error."""
    import httpx

    from exporters.errors import RunnerError
    from service.remote import _follow, checked  # the job follower remote_compare uses

    side = remote_side(server, token, ref, device_class)
    body = {
        **({"artifact": side["artifact"]} if isinstance(side, dict) and "artifact" in side
           else {"model": side}),
        "devices": [device_class.value],
        "settings": settings.model_dump(mode="json", exclude_defaults=True),
    }  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=server, timeout=60.0) as client:
        accepted = checked(client.post("/profile", json=body, headers=headers))
        job_id = accepted["jobs"][0]["id"]
        job = _follow(client, job_id, headers, None, 1.0, 3600.0)
    if job["state"] == "failed":
        raise RunnerError(f"profile job {job_id} failed on {server}: {job['error']}")
    return {"job_id": job_id, "server": server, **job["result"]}


def on_server(server: str, device: str | None, runner: str | None) -> tuple[str, DeviceClass]:
    """The checked URL and the device class a --server request asks for."""
    from exporters.errors import SpecError
    from exporters.formats import parse_device_class
    from service.cli import check_url

    if runner is not None:
        raise SpecError(
            "chooses a runner on this host; with --server the server picks its runner of the "
            "--device class",
            field="--runner",
        )
    return check_url(server), parse_device_class(device or "cpu", field="--device")


def say_remote(doc: dict[str, Any], label: str, *, as_json: bool) -> None:
    """The document a server answered (--json), or one line for people about it."""
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    lat = doc.get("latency_ms") or doc.get("b") or {}
    ci = lat.get("ci95") or lat.get("interval") or ("?", "?")
    if "ratio" in doc:
        lo, hi = doc["ci95"]
        typer.echo(f"{label}: B/A = {doc['ratio']:.4f}  95% CI [{lo:.4f}, {hi:.4f}]")
        return
    typer.echo(
        f"{label}: median {lat['median']:.3f} ms  95% CI [{ci[0]:.3f}, {ci[1]:.3f}]  "
        f"n={lat.get('n')}  (job {doc.get('job_id')})"
    )
