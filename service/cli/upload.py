"""``latbench upload REF --server URL``: build (or validate) locally, then send the ONNX artifact
to POST /artifacts. The server never imports user code: ``python:`` sources are built here."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from exporters.errors import LatbenchError, SpecError
from service.cli import check_url, data_dir, fail, host_lock_path
from service.cli._refs import check_ref


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
    from service.remote import upload_artifact, upload_label

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


def register(app: typer.Typer) -> None:
    app.command("upload")(upload_command)
