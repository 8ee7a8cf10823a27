"""``latbench accuracy set SPEC --top1 …``: attach your own top-1 to what you measured, through the
server's ``POST /accuracy`` (the one place that writes it), so the dashboard plots your spec with
its provenance. SPEC is a zoo name, a spec file, or the spec hash the dashboard shows."""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer

from exporters.errors import LatbenchError, error_from_response
from exporters.spec import resolve_spec_argument
from service.cli import check_url, fail

accuracy_app = typer.Typer(
    help="Attach your own top-1 to a spec you measured.", no_args_is_help=True
)
HASH = re.compile(r"^[0-9a-f]{64}$")


@accuracy_app.command("set")
def set_accuracy(
    spec: Annotated[str, typer.Argument(help="zoo name, spec file (.json/.yaml) or spec hash")],
    top1: Annotated[float, typer.Option(help="top-1 accuracy, percent")],
    source: Annotated[str, typer.Option(help="where it comes from: run id, URL, paper")],
    dataset: Annotated[str, typer.Option(help="evaluation dataset")] = "imagenet-1k",
    resolution: Annotated[int | None, typer.Option(help="evaluation input side, px")] = None,
    note: Annotated[str | None, typer.Option(help="free note shown with the figure")] = None,
    server: Annotated[
        str, typer.Option(envvar="LATBENCH_SERVER", help="the service's URL")
    ] = "http://127.0.0.1:8000",
    token: Annotated[
        str | None,
        typer.Option(envvar="LATBENCH_API_TOKEN", help="API token, if the server has one"),
    ] = None,
) -> None:
    """Attach TOP1 (with its source) to SPEC on the server; prints the stored record as JSON."""
    import httpx

    try:
        server = check_url(server)
        subject = (
            {"spec_hash": spec}
            if HASH.match(spec)
            else {"model": resolve_spec_argument(spec).model_dump(mode="json")}
        )
        body = {
            **subject,
            "top1": top1,
            "source": source,
            "dataset": dataset,
            "resolution": resolution,
            "note": note,
        }
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = httpx.post(f"{server}/accuracy", json=body, headers=headers, timeout=30)
        except httpx.TransportError as exc:
            raise LatbenchError(f"server {server} unreachable ({exc}); check --server") from exc
        if response.is_error:
            raise error_from_response(response)
    except LatbenchError as error:
        raise fail(error) from None
    typer.echo(json.dumps(response.json(), indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(accuracy_app, name="accuracy")
