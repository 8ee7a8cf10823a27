"""The dashboard: a page per view (devices' charts, a model), the data behind them as JSON and CSV,
and Plotly's script served from the installed ``plotly`` package (no CDN)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from exporters.errors import NotFoundError
from exporters.formats import Precision
from exporters.sources.ready import weights_said
from service import reference
from service.api.deps import CallerDep, ReadSessionDep, SettingsDep, UserDep
from service.api.present import is_upload, job_public, runner_public
from service.auth import Caller
from service.dashboard import view
from service.db import jobs, owners, runners
from service.db.accuracy import accuracies
from service.db.gateruns import list_gate_runs
from service.db.results import list_results
from service.db.tables import ArtifactRow, JobRow, ResultRow, SpecRow
from service.settings import Settings

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

DeviceQ = Annotated[str | None, Query(max_length=32, pattern=r"^[a-z0-9_\-]+$")]
FamilyQ = Annotated[list[str], Query(max_length=32)]
KindQ = Annotated[list[view.Kind], Query(max_length=4)]
PrecisionQ = Annotated[list[Precision], Query(max_length=len(Precision))]


def plotly_js() -> str:
    """The plotly.js bundle the ``plotly`` wheel ships, as text (served, or inlined in reports)."""
    return resources.files("plotly").joinpath("package_data/plotly.min.js").read_text("utf-8")


@router.get("/", response_class=RedirectResponse)
async def root(_user: UserDep) -> RedirectResponse:
    return RedirectResponse("/dashboard")


@router.get("/dashboard/assets/plotly.min.js")
def plotly_asset() -> Response:
    return Response(
        plotly_js(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


def _view(
    session: Session,
    settings: Settings,
    caller: Caller,
    device: str | None,
    family: list[str],
    kind: list[view.Kind],
    precision: list[Precision],
) -> view.Dashboard:
    return view.build(
        session,
        reference_csv=settings.reference_csv,
        device=device,
        families=set(family),
        kinds=set(kind),
        precisions={p.value for p in precision},
        viewer=_viewer(caller),
    )


def _viewer(caller: Caller) -> str | None:
    """Whose view the listings filter for: None for an admin (everything)."""
    return None if caller.admin else caller.name


@router.get("/dashboard/data.json")
def dashboard_data(
    session: ReadSessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    device: DeviceQ = None,
    family: FamilyQ = [],  # noqa: B006 (FastAPI copies query defaults)
    kind: KindQ = [],  # noqa: B006
    precision: PrecisionQ = [],  # noqa: B006
) -> JSONResponse:
    return JSONResponse(_view(session, settings, caller, device, family, kind, precision).to_json())


@router.get("/dashboard/data.csv")
def dashboard_csv(
    session: ReadSessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    device: DeviceQ = None,
    family: FamilyQ = [],  # noqa: B006
    kind: KindQ = [],  # noqa: B006
    precision: PrecisionQ = [],  # noqa: B006
) -> Response:
    data = view.to_csv(_view(session, settings, caller, device, family, kind, precision))
    name = f"latbench-{device or 'all'}.csv"
    return Response(
        data, media_type="text/csv", headers={"Content-Disposition": f"attachment; filename={name}"}
    )


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(
    request: Request, session: ReadSessionDep, settings: SettingsDep, caller: CallerDep
) -> HTMLResponse:
    viewer = _viewer(caller)
    overview = view.build(session, reference_csv=settings.reference_csv, viewer=viewer)
    states = dict(session.execute(select(JobRow.state, func.count()).group_by(JobRow.state)).all())
    recent, _count = jobs.list_jobs(session, limit=30, viewer=viewer)
    return templates.TemplateResponse(
        request,
        "dashboard.html",
        {
            "overview": overview,
            "kinds": [k.value for k in view.Kind],
            "runners": [runner_public(r) for r in runners.list_runners(session)],
            "states": states,
            "jobs": [job_public(session, j) for j in recent],
            "report": None,
        },
    )


@router.get("/dashboard/models/{spec_hash}", response_class=HTMLResponse)
def model_page(
    spec_hash: str,
    request: Request,
    session: ReadSessionDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> HTMLResponse:
    spec = session.get(SpecRow, spec_hash)
    if spec is None or not owners.may_see(session, caller, [spec_hash]):
        raise NotFoundError(f"no stored spec with hash {spec_hash!r}")
    ref = reference.load(settings.reference_csv).get(spec.model)
    artifacts = list(session.scalars(select(ArtifactRow).where(ArtifactRow.spec_hash == spec_hash)))
    history = [  # newest first
        row.result
        for row in list_results(session, model=spec.model, limit=10000)
        if row.result.spec_hash == spec_hash
    ]
    with_layers = next((r for r in history if r.measurement.get("layers")), None)
    return templates.TemplateResponse(
        request,
        "model.html",
        {
            "spec": spec,
            "weights": weights_said(is_upload(spec)),
            "published": ref if view.is_published_spec(spec, ref) else None,
            "accuracy": accuracies(session, subjects=[spec_hash]).get(spec_hash),
            "reparam": next(
                (a.report.get("reparam") for a in artifacts if a.report.get("reparam")), None
            ),
            "artifacts": artifacts,
            "layers": with_layers.measurement["layers"] if with_layers else None,
            "layers_device": with_layers.device_class if with_layers else None,
            "history": [_history_entry(r) for r in reversed(history)],
            "gate_runs": list_gate_runs(session, model=spec.model, viewer=_viewer(caller)),
        },
    )


def _history_entry(result: ResultRow) -> dict[str, Any]:
    low, high = view.interval(result.measurement["latency_ms"])
    return {
        "device": result.device_class,
        "format": result.format,
        "created_at": result.created_at.isoformat(),
        "median_ms": result.median_ms,
        "low": low,
        "high": high,
        "kind": result.measurement.get("kind", "measured"),
        "threads": (result.measurement.get("settings") or {}).get("threads"),
        "job_id": result.job_id,
    }


def mount(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
