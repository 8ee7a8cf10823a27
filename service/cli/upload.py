"""``latbench upload REF --server URL``: build (or validate) locally, then send the ONNX artifact
to POST /artifacts. The server never imports user code: ``python:`` sources are built here."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from exporters.artifacts import Artifact
from exporters.errors import AuthError, LatbenchError, PayloadTooLargeError, SpecError
from service.cli import check_url, data_dir, fail, host_lock_path
from service.cli._refs import check_ref


def upload_artifact(client: Any, artifact: Artifact, *, name: str, token: str | None) -> dict:
    """POST the artifact's bytes with ``client`` (an ``httpx.Client`` on the server); its id.
    The server's refusal comes back as the same error class, with its message and field."""
    headers = {"content-type": "application/octet-stream"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    response = client.post(
        "/artifacts", content=artifact.path.read_bytes(), params={"name": name}, headers=headers
    )
    if response.status_code < 400:
        return response.json()
    body = response.json() if "json" in response.headers.get("content-type", "") else {}
    detail = body.get("detail", response.text[:300])
    if response.status_code == 401:
        raise AuthError(f"the server refused the upload: {detail} (set LATBENCH_API_TOKEN)")
    if response.status_code == 413:
        raise PayloadTooLargeError(detail)
    raise SpecError(f"the server refused the upload: {detail}", field=body.get("field"))


def upload_command(
    model: Annotated[
        str, typer.Argument(help="zoo name, spec file, python:pkg.mod:factory, .onnx")
    ],
    server: Annotated[
        str, typer.Option(envvar="LATBENCH_SERVER", help="server URL, e.g. http://lab-server:8000")
    ],
    token: Annotated[
        str | None, typer.Option(envvar="LATBENCH_API_TOKEN", help="the server's API token")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="the label the server shows (default: the model's name)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
) -> None:
    """Build locally and upload the ONNX artifact; prints the artifact id to profile or gate."""
    import httpx

    from exporters.formats import ExportFormat
    from service import pipeline

    try:
        server = check_url(server)
        check_ref(model)
        done = pipeline.materialize(
            model, ExportFormat.ONNX, store_root=data_dir(), lock_path=host_lock_path()
        )
        with httpx.Client(base_url=server, timeout=300) as client:
            uploaded = upload_artifact(
                client, done.artifact, name=upload_label(name or done.model), token=token
            )
    except LatbenchError as error:
        raise fail(error) from None
    except httpx.HTTPError as error:
        raise fail(SpecError(f"cannot reach {server}: {error}", field="server")) from None
    doc = {**done.to_dict(), "id": uploaded["id"], "server": server}
    typer.echo(json.dumps(doc, indent=2) if as_json else f"{uploaded['id']}  ({done.reparam_note})")


def upload_label(model: str) -> str:
    """The label the server keeps: its allowed characters only."""
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in model)[:128] or "uploaded"


def register(app: typer.Typer) -> None:
    app.command("upload")(upload_command)
