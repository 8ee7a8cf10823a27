"""With an API token set, every route but /healthz refuses a request without it (the runner
routes answer to runner tokens instead); /metrics is computed by the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.db import jobs
from service.db.jobs import JobState
from service.db.tables import JobRow
from tests.service.test_db import _job

TOKEN = "t" * 20
OPEN = {"/healthz"}


HIDDEN = [("GET", "/"), ("GET", "/dashboard"), ("GET", "/docs"), ("GET", "/openapi.json")]


def user_routes(app) -> list[tuple[str, str]]:
    """Every operation of the OpenAPI schema, plus the routes kept out of it."""
    routes = list(HIDDEN)
    for path, operations in app.openapi()["paths"].items():
        if path in OPEN or path.startswith("/runners"):
            continue
        concrete = path.replace("{job_id}", "x")
        routes += [(method.upper(), concrete) for method in operations]
    return routes


def test_every_route_but_healthz_needs_the_token(settings):
    settings.api_token = TOKEN
    app = create_app(settings)
    routes = user_routes(app)
    assert ("GET", "/dashboard") in routes and ("GET", "/metrics") in routes
    assert ("GET", "/openapi.json") in routes
    with TestClient(app, follow_redirects=False) as client:
        refused = {(m, p): client.request(m, p, json={}).status_code for m, p in routes}
        authed = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        health = client.get("/healthz")
    assert refused == {route: 401 for route in routes}
    assert authed.status_code == 200 and health.status_code == 200


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
