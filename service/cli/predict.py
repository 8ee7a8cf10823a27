"""`latbench predict` (predicted latency on a device class nobody attached, with its error) and
`latbench predictor fit` (refit a class from published rows plus the measurements stored here)."""

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
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON document")]

predictor_app = typer.Typer(help="Latency predictors per device class.", no_args_is_help=True)


def predict(
    model: Annotated[str, typer.Argument(help="zoo name or spec file (.json/.yaml)")],
    device: DeviceOpt = "iphone12-class",
    as_json: AsJson = False,
) -> None:
    """Predict latency from the deploy-form graph: a prediction, never a measurement."""
    from exporters.spec import resolve_spec_argument
    from service.predict.predictor import predict_spec

    try:
        device_class = parse_device_class(device, field="--device")
        prediction = predict_spec(resolve_spec_argument(model), device_class, data_dir=data_dir())
    except LatbenchError as error:
        raise fail(error) from None
    if as_json:
        typer.echo(prediction.model_dump_json(indent=2))
        return
    info, domain = prediction.predictor, prediction.domain
    low, high = prediction.interval_ms
    table = Table(title=f"{prediction.model} on {prediction.device_class} (PREDICTED)")
    for column in ("latency ms", f"{prediction.interval_level:.0%} interval", "domain"):
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
        f"{len(info.families)} families; leave-one-family-out CV: median abs error "
        f"{info.cv.median_ape_pct:.1f}%, Spearman {info.cv.spearman:.2f}"
    )
    for note in prediction.notes:
        console.print(f"note: {note}")


def fit(
    device: DeviceOpt,
    export_missing: Annotated[
        bool, typer.Option(help="export published rows the shipped features lack (slow)")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Refit DEVICE from its published rows plus every measurement stored for it here (specs
    measured here are exported when their features are not cached yet)."""
    from exporters.artifacts import ArtifactStore
    from service.predict.featurecache import FeatureCache
    from service.predict.predictor import fit_predictor, save
    from service.predict.training import published_rows

    try:
        device_class = parse_device_class(device, field="--device")
        features = FeatureCache(
            local=data_dir() / "predict" / "features.json", store=ArtifactStore(data_dir())
        )
        published = published_rows(device_class)
        skipped = {
            row.id: "no shipped features (--export-missing exports it)"
            for row in published
            if not export_missing and features.lookup(row.spec) is None
        }
        rows = [r for r in published if r.id not in skipped] + _stored_rows(device_class.value)
        report = fit_predictor(device_class, rows, features=features)
        path = save(report.predictor, data_dir())
    except LatbenchError as error:
        raise fail(error) from None
    skipped.update(report.skipped)
    info = report.predictor.info()
    if as_json:
        document = {"saved": str(path), "skipped": skipped, **info.model_dump()}
        typer.echo(json.dumps(document, indent=2))
        return
    measured = sum(1 for i in info.training_ids if i.startswith("measured:"))
    typer.echo(
        f"{device_class.value}: {info.training_rows} rows ({measured} measured here), "
        f"{len(info.families)} families, {info.method}\n"
        f"leave-one-family-out: median abs error {info.cv.median_ape_pct:.1f}%, "
        f"Spearman {info.cv.spearman:.2f}\nsaved {path}"
    )
    for row_id, why in skipped.items():
        typer.echo(f"skipped {row_id}: {why}")


def _stored_rows(device_class: str) -> list:
    """Training rows from the results stored in this installation's database."""
    from service.db.engine import make_engine, make_sessionmaker, upgrade
    from service.db.results import list_results
    from service.predict.training import rows_from_results
    from service.settings import get_settings

    engine = make_engine(get_settings().db_url)
    upgrade(engine)
    with make_sessionmaker(engine)() as session:
        rows = list_results(session, device_class=device_class, limit=100_000)
        return rows_from_results((result, spec) for result, spec, _ in rows)


predictor_app.command("fit")(fit)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
    app.add_typer(predictor_app, name="predictor")
