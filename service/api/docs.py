"""/openapi.json and /docs behind the API token like every route but /healthz (FastAPI's own
versions of both are switched off in ``create_app``: they take no dependencies)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from service.api.deps import UserDep

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request, _user: UserDep) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def docs(request: Request, _user: UserDep) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=request.app.title)
