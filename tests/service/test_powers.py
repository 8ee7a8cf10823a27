"""With an API token set, every route the app mounts but /healthz and the static files refuses
a request without it (the runner routes answer to runner tokens instead); /metrics is computed by
the database."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Mount

from service.app import create_app
from service.db import jobs
from service.db.jobs import JobState
from service.db.tables import JobRow
from tests.service.test_db import _job

TOKEN = "t" * 20
RUNNER_TOKEN = "r" * 20
OPEN = {"/healthz"}
# Static files, no data: the dashboard's scripts and styles load before any token is typed.
ASSETS = {
    "/static": "/static/style.css",
    "/dashboard/assets/plotly.min.js": "/dashboard/assets/plotly.min.js",
}


def mounted_routes(routes, prefix: str = "") -> list[tuple[str, str]]:
    """Every (method, path) the app serves, read from its router: included routers (FastAPI
    keeps them apart until the first request), routes kept out of the OpenAPI schema, mounts."""
    found = []
    for route in routes:
        if hasattr(route, "original_router"):  # an included router, with its prefix
            found += mounted_routes(
                route.original_router.routes, prefix + route.include_context.prefix
            )
        elif isinstance(route, Mount):
            found.append(("GET", prefix + route.path))
        else:
            found += [(m, prefix + route.path) for m in sorted(route.methods) if m != "HEAD"]
    return found


def test_every_route_but_healthz_and_static_files_needs_its_token(settings):
    settings.api_token, settings.runner_token = TOKEN, RUNNER_TOKEN
    app = create_app(settings)
    routes = mounted_routes(app.routes)
    schema = {(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops}
    assert schema <= set(routes), "the walk misses routes of the schema"
    hidden = {
        ("GET", p)
        for p in (
            "/",
            "/docs",
            "/openapi.json",
            "/dashboard",
            "/dashboard/data.json",
            "/dashboard/data.csv",
            "/dashboard/models/{spec_hash}",
        )
    }
    assert hidden <= set(routes) - schema
    with TestClient(app, follow_redirects=False) as client:
        runner = client.post(
            "/runners",
            json={"device_class": "cpu-x86_64"},
            headers={"Authorization": f"Bearer {RUNNER_TOKEN}"},
        ).json()
        concrete = {"{runner_id}": runner["id"]}

        def call(method: str, path: str) -> int:
            for name, value in concrete.items():
                path = path.replace(name, value)
            path = re.sub(r"\{[^}]+\}", "x", path)
            body = (
                {"device_class": "cpu-x86_64"} if path == "/runners" else {}
            )  # valid: 401, not 422
            return client.request(method, ASSETS.get(path, path), json=body).status_code

        answers = {(m, p): call(m, p) for m, p in routes}
        authed = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    opened = {(m, p): 200 for m, p in routes if p in OPEN or p in ASSETS}
    assert len(opened) == len(OPEN) + len(ASSETS), opened
    assert answers == {route: 401 for route in routes} | opened
    assert authed.status_code == 200


def test_metrics_histogram_comes_from_the_database(sessions):
    with sessions() as s:
        for i, seconds in enumerate((0.5, 3.0, 100.0)):
            job, _ = _job(s, key=str(i) * 64)
            row = s.get(JobRow, job.id)
            row.state = JobState.DONE.value
            row.active_key = None
            row.finished_at = row.created_at + timedelta(seconds=seconds)
            s.commit()
        histogram = jobs.done_durations(s, bounds=(1.0, 5.0, 60.0))
    assert histogram.cumulative == (1, 2, 2)
    assert histogram.count == 3
    assert histogram.total_s == pytest.approx(103.5, abs=0.01)


def test_metrics_endpoint_speaks_prometheus(settings):
    with TestClient(create_app(settings)) as client:
        answer = client.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert {"latbench_jobs", "latbench_queue_depth", "latbench_job_duration_seconds"} <= names
