"""`latbench predict` (predicted latency on a device class nobody attached, with its error; no
number outside the training domain unless asked for) and `latbench predictor fit` (refit the
shipped predictors, or one class from published rows plus the measurements stored here)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from exporters.errors import LatbenchError
from exporters.formats import device_class_choices, parse_device_class
from service.cli import data_dir, fail

DeviceOpt = Annotated[str, typer.Option("--device", help=f"device class: {device_class_choices()}")]
AllowOut = Annotated[
    bool,
    typer.Option(
        "--allow-out-of-domain",
        help="give a number (with the wide interval out-of-domain cases earned in CV) for a "
        "graph with op types the predictor never saw, instead of abstaining",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON document")]

predictor_app = typer.Typer(help="Latency predictors per device class.", no_args_is_help=True)


def predict(
    model: Annotated[str, typer.Argument(help="zoo name or spec file (.json/.yaml)")],
    device: DeviceOpt = "iphone12-class",
    allow_out_of_domain: AllowOut = False,
    as_json: AsJson = False,
) -> None:
    """Predict latency from the deploy-form graph: a prediction, never a measurement. Outside
    the training domain (op types never seen) it abstains, saying why and what would resolve it."""
    from exporters.spec import resolve_spec_argument
    from service.predict.predictor import OutOfDomainError
    from service.predict.shipped import predict_spec

    try:
        prediction = predict_spec(
            resolve_spec_argument(model),
            parse_device_class(device, field="--device"),
            data_dir=data_dir(),
            allow_out_of_domain=allow_out_of_domain,
        )
    except OutOfDomainError as error:
        if as_json:
            doc = {"kind": "abstained", "reason": str(error), **error.domain.model_dump()}
            typer.echo(json.dumps(doc, indent=2))
        raise fail(error) from None
    except LatbenchError as error:
        raise fail(error) from None
    if as_json:  # the shape a predict job's result has in the API (`latbench schema predict`)
        doc = {
            "model": prediction.model,
            "spec_hash": prediction.spec_hash,
            "device_class": prediction.device_class,
            "features_stale": prediction.features_stale,
            **prediction.record().stored(),
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    info, domain = prediction.predictor, prediction.domain
    low, high = prediction.interval_ms
    table = Table(title=f"{prediction.model} on {prediction.device_class} (PREDICTED)")
    interval = f"{prediction.interval_level:.0%} interval (CV: {prediction.interval_achieved:.0%})"
    for column in ("latency ms", interval, "domain"):
        table.add_column(column)
    table.add_row(
        f"{prediction.latency_ms:.2f}",
        f"{low:.2f} – {high:.2f}",
        "inside" if domain.inside else f"OUTSIDE: {domain.note}",
    )
    console = Console()
    console.print(table)
    console.print(
        f"predictor {info.version}: {info.method}; {info.training_rows} training rows, "
        f"{len(info.families)} families; nested leave-one-family-out CV inside the domain: "
        f"median abs error {info.cv.median_ape_pct:.1f}%, Spearman {info.cv.spearman:.2f}"
    )
    for note in prediction.notes:
        console.print(f"note: {note}")


def fit(
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            help="refit this class from its published rows plus the results measured here "
            "(saved in the data directory); without it, refit the shipped predictors",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Fit predictors: every class from the shipped published rows into the package data, or
    (--device) one class adapted to the results stored here for it."""
    from service.predict.shipped import save, shipped_path, write_shipped

    try:
        if device is None:
            entries = write_shipped(shipped_path())
            path = shipped_path()
        else:
            fitted = _adapted(device)
            path, entry = save(fitted, data_dir())
            entries = {fitted.device_class: entry}
    except LatbenchError as error:
        raise fail(error) from None
    if as_json:
        typer.echo(json.dumps({"saved": str(path), "classes": entries}, indent=2))
        return
    for name, entry in entries.items():
        offered = entry["predictor"]
        rows = len(offered["training_ids"]) if offered else 0
        measured = sum(
            1 for i in (offered or {}).get("training_ids", []) if i.startswith("measured:")
        )
        typer.echo(
            f"{name}: {offered['label'] if offered else 'no prediction offered'} "
            f"({rows} rows, {measured} measured here): {entry['reason']}"
        )
        for row_id, why in entry["skipped"].items():
            typer.echo(f"  skipped {row_id}: {why}")
    typer.echo(f"saved {path}")


def _adapted(device: str):
    """The class fitted on its published rows rescaled to, and joined by, the rows measured here
    (``fitting.adapt``); specs measured here are exported when their features are not cached."""
    from exporters.artifacts import ArtifactStore
    from service.predict.featurecache import FeatureCache
    from service.predict.fitting import adapt, fit_samples, samples_for
    from service.predict.training import published_rows

    device_class = parse_device_class(device, field="--device")
    published, _, skipped = samples_for(published_rows(device_class), FeatureCache())
    features = FeatureCache(
        local=data_dir() / "predict" / "features.json", store=ArtifactStore(data_dir())
    )
    measured, _, more = samples_for(_stored_rows(device_class.value), features)
    return fit_samples(device_class, adapt(published, measured), {**skipped, **more})


def _stored_rows(device_class: str) -> list:
    """Training rows from the results stored in this installation's database."""
    from service.cli._db import server_session
    from service.db.results import list_results
    from service.predict.training import rows_from_results

    with server_session() as session:
        rows = list_results(session, device_class=device_class, limit=100_000)
        return rows_from_results((row.result, row.spec) for row in rows)


predictor_app.command("fit")(fit)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
    app.add_typer(predictor_app, name="predictor")
