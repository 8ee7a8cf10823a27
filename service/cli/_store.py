"""What `latbench profile` and `latbench compare` measured, kept in this data dir's database (the
store `latbench serve` and `latbench report` read), so the dashboard and the report show it.

Each local result is a finished job of user ``local`` with a request key of its own: listed
and charted like a server's result, labelled local (the job's user, a note on the measurement),
and never taken by the server as a cached answer to a request of its own."""

from __future__ import annotations

import uuid
from typing import Any

from service.cli._db import server_session

LOCAL_USER = "local"


def _rows(session: Any, side: dict[str, Any], spec: Any) -> None:
    """The spec and artifact rows a result points at: the ModelSpec's identity for zoo and spec
    sources, a row naming the source for the rest (a ``python:`` factory; a ready artifact,
    marked uploaded: it carries its own weights); the artifact with its reparam summary."""
    from service.db.artifacts import UPLOADED
    from service.db.jobs import upsert_spec
    from service.db.tables import ArtifactRow, SpecRow

    if spec is not None and spec.content_hash() == side["spec_hash"]:
        family = _family(spec.model)
        upsert_spec(session, spec_hash=side["spec_hash"], model=spec.model, family=family,
                    body=spec.model_dump(mode="json"))  # fmt: skip
    elif session.get(SpecRow, side["spec_hash"]) is None:
        family = UPLOADED if side["reparam"]["ok"] is None else None
        body = {"source": "local", "ref": side["model"]}
        session.add(SpecRow(hash=side["spec_hash"], model=side["model"], family=family, body=body))
    if session.get(ArtifactRow, side["artifact_key"]) is None:
        session.add(
            ArtifactRow(key=side["artifact_key"], spec_hash=side["spec_hash"],
                        format=side["format"], precision=side["precision"], path=None, ok=True,
                        report={"key": side["artifact_key"], "reparam": side["reparam"]})
        )  # fmt: skip
    session.commit()


def _family(model: str) -> str | None:
    from exporters.errors import SpecError
    from exporters.zoo import get_model

    try:
        return get_model(model).family
    except SpecError:
        return None


def store(
    kind: str,
    sides: dict[str, tuple[dict[str, Any], Any]],
    device_class: str,
    record: dict[str, Any],
) -> str:
    """Store one local result of ``kind`` (profile: role ``model``; compare: ``baseline`` and
    ``candidate``), each role's side as the command printed it with the ModelSpec it was built
    from (or None); the id of the finished job holding it."""
    from service.db import jobs
    from service.db.comparisons import record_comparison
    from service.db.results import record_result

    recorder = {"profile": record_result, "compare": record_comparison}[kind]
    note = f"measured locally (`latbench {kind}`), not by a server's runner"
    record = {**record, "notes": [*record.get("notes", []), note]}
    first = next(iter(sides.values()))[0]
    with server_session() as session:
        for side, spec in sides.values():
            _rows(session, side, spec)
        job, _ = jobs.create_or_coalesce(
            session,
            kind=kind,
            spec_hash=first["spec_hash"],
            specs={role: side["spec_hash"] for role, (side, _) in sides.items()}
            if len(sides) > 1
            else None,
            device_class=device_class,
            fmt=first["format"],
            settings=record.get("settings") or {},
            request_key=f"local-{uuid.uuid4().hex}",
            user=LOCAL_USER,
            reuse_result=False,
            artifact_keys={role: side["artifact_key"] for role, (side, _) in sides.items()},
        )
        recorder(session, job=job, model=first["model"], runner_id=None, measurement=record)
        return job.id


def spec_of(ref: str, precision: Any) -> Any:
    """The ModelSpec a zoo name or spec file builds (None for other sources)."""
    from pathlib import Path

    from exporters.errors import LatbenchError
    from exporters.formats import ExportFormat
    from exporters.sources import buildable, with_precision
    from exporters.spec import PYTHON_SOURCE, ModelSpec

    if ref.startswith(PYTHON_SOURCE) or Path(ref).suffix in {f.suffix for f in ExportFormat}:
        return None
    try:
        source = with_precision(buildable(ref), precision)
    except LatbenchError:
        return None
    return source if isinstance(source, ModelSpec) else None


def keep(
    kind: str, sides: dict[str, tuple[dict[str, Any], Any]], runner: str, record: dict
) -> str | None:
    """``store`` for a command: a failure to store is said on stderr and loses no result."""
    import typer
    from sqlalchemy.exc import SQLAlchemyError

    from devices.runner import runner_class
    from exporters.errors import LatbenchError

    try:
        return store(kind, sides, runner_class(runner).device_class.value, record)
    except (LatbenchError, SQLAlchemyError, OSError) as error:
        typer.secho(f"warning: the result was not stored in the data dir: {error}", err=True)
        return None
