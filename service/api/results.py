"""GET /results: stored measurements, filtered, as JSON or CSV (``?format=csv``); predictions
only when asked for by ``kind=predicted`` (they live apart, never mixed with measurements)."""

from __future__ import annotations

import csv
import io
from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from exporters.formats import DeviceClass
from service.api.deps import CallerDep, ReadSessionDep
from service.api.present import result_public
from service.api.responses import ModelJSON
from service.api.schemas import ResultPublic, ResultsPublic, UtcTimestamp
from service.db.results import list_results

router = APIRouter(prefix="/results", tags=["results"])

CSV_COLUMNS = (
    "id",
    "job_id",
    "model",
    "family",
    "device_class",
    "format",
    "median_ms",
    "p90_ms",
    "ci95_low_ms",
    "ci95_high_ms",
    "n",
    "threads",
    "cpu_model",
    "runtime",
    "runtime_version",
    "others_cpu_pct",
    "weights",
    "spec_hash",
    "created_at",
)


@router.get("", response_model=ResultsPublic, responses={200: {"content": {"text/csv": {}}}})
def read_results(
    session: ReadSessionDep,
    caller: CallerDep,
    model: str | None = Query(None, max_length=128),
    family: str | None = Query(None, max_length=64),
    device: DeviceClass | None = None,
    since: UtcTimestamp | None = None,
    format: Literal["json", "csv"] = "json",
    limit: int = Query(1000, ge=1, le=10000),
    kind: Literal["measured", "predicted"] = "measured",
) -> Response:
    rows = list_results(
        session,
        kind=kind,
        model=model,
        family=family,
        device_class=device.value if device else None,
        since=since,
        limit=limit,
        viewer=None if caller.admin else caller.name,
    )
    data = [
        result_public(row.result, row.spec, row.artifact, runner_revoked=row.runner_revoked)
        for row in rows
    ]
    if format == "csv":
        return Response(to_csv(data), media_type="text/csv")
    return ModelJSON(ResultsPublic(data=data, count=len(data)))


def to_csv(results: list[ResultPublic]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in results:
        lat, dev = r.latency_ms, r.device
        ci = lat.ci95 or (None, None)
        writer.writerow(
            [
                r.id,
                r.job_id,
                r.model,
                r.family,
                r.device_class,
                r.format,
                lat.median,
                lat.p90,
                ci[0],
                ci[1],
                lat.n,
                dev.get("threads"),
                dev.get("cpu_model"),
                dev.get("runtime"),
                dev.get("runtime_version"),
                r.host_load.get("others_cpu_pct"),
                r.weights,
                r.spec_hash,
                r.created_at.isoformat(),
            ]
        )
    return out.getvalue()
