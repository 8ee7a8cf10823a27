"""GET /dashboard: one latency-vs-accuracy plot per device class, latest result per model."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from service import reference
from service.api.deps import ReadSessionDep, SettingsDep, UserDep
from service.dashboard.plot import Point, layout
from service.db.results import list_results

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=RedirectResponse)
async def root(_user: UserDep) -> RedirectResponse:
    return RedirectResponse("/dashboard")


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(
    request: Request, session: ReadSessionDep, settings: SettingsDep, _user: UserDep
) -> HTMLResponse:
    refs = reference.load(settings.reference_csv)
    published = reference.load_latency(settings.reference_csv)
    latest: dict[str, dict[str, float]] = {}
    for result, _spec in list_results(session, limit=5000):  # newest first
        latest.setdefault(result.device_class, {}).setdefault(result.model, result.median_ms)
    panels = []
    for device, by_model in sorted(latest.items()):
        points = [Point(m, ms, refs[m].top1) for m, ms in sorted(by_model.items()) if m in refs]
        unplotted = sorted(m for m in by_model if m not in refs)
        panels.append(
            {
                "device": device,
                "plot": layout(points),
                "unplotted": unplotted,
                "rows": sorted(points, key=lambda p: p.latency_ms),
                "published": {
                    p.label: published[(p.label, device)]
                    for p in points
                    if (p.label, device) in published
                },
            }
        )
    sources = sorted(
        {refs[p.label].source for panel in panels for p in panel["rows"]}
        | {pub.source for panel in panels for pub in panel["published"].values()}
    )
    return templates.TemplateResponse(
        request,
        "dashboard.html",
        {
            "panels": panels,
            "sources": sources,
            "cite": lambda source: sources.index(source) + 1,  # every figure shown cites its source
            "refs": refs,
            "has_reference": bool(refs),
        },
    )


def mount(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
