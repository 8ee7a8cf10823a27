"""``latbench schema KIND``: the JSON Schema of a result kind, from the same pydantic model that
serialises it in the command's ``--json``, in the API and in the stored rows (the API's side is
also in its OpenAPI document, /openapi.json)."""

from __future__ import annotations

import importlib
import json
from enum import Enum
from typing import Annotated

import typer

# kind -> (module, model): what `latbench <command> --json` and its API twin both carry
MODELS = {
    "profile": ("devices.results", "MeasurementRecord"),  # profile --json; GET /results extends it
    "compare": ("devices.results", "ComparisonRecord"),  # compare --json; a compare job's result
    "predict": ("devices.results", "PredictionRecord"),  # a predict job's result
    "result": ("service.api.schemas", "ResultPublic"),  # GET /results, a profile job's result
    "models": ("service.api.schemas", "ModelsPublic"),  # models --json = GET /models
    "reparam": ("service.api.schemas", "ReparamPublic"),  # `reparam` in every output
}
Kind = Enum("Kind", {name: name for name in MODELS}, type=str)  # type: ignore[misc]


def schema_of(kind: str) -> dict:
    module, name = MODELS[kind]
    return getattr(importlib.import_module(module), name).model_json_schema()


def schema_command(
    kind: Annotated[Kind, typer.Argument(help="which result: " + ", ".join(MODELS))],
) -> None:
    """Print the JSON Schema of a result kind (what --json prints and the API answers)."""
    typer.echo(json.dumps(schema_of(kind.value), indent=2))


def register(app: typer.Typer) -> None:
    app.command("schema")(schema_command)
