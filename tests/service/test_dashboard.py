"""The dashboard's data and pages over HTTP, on a real database filled through the data functions
(the measuring path has its own tests): points keyed by what was measured, the user's accuracy,
the four kinds, fronts, ranks across devices, CSV, the model page, and the packaged reference."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from exporters.spec import parse_spec
from service import reference
from service.api.health import render_metrics
from service.app import create_app
from service.dashboard import report
from service.db import jobs
from service.db.jobs import DurationHistogram
from service.db.results import record_prediction, record_result
from tests.service.backends import unavailable

REF = (
    "model,family,timm_name,resolution,top1,device,latency_ms,source_repo,source_file_or_table\n"
    "MobileOne-S0,MobileOne,mobileone_s0,224,71.4,iPhone 12,0.79,apple/ml-mobileone,README\n"
    "MobileOne-S1,MobileOne,mobileone_s1,224,75.9,iPhone 12,0.89,apple/ml-mobileone,README\n"
    "MobileOne-S0,MobileOne,mobileone_s0,224,,Intel Core i9-9900X CPU (single thread),9.9,fn,T3\n"
    "MobileOne-S1,MobileOne,mobileone_s1,224,,Intel Core i9-9900X CPU (single thread),8.0,fn,T3\n"
)


# references that would point outside the repository: a sibling folder, an absolute dev path
OUTSIDE_PATHS = (".." + "/shared", "/" + "work" + "/")


def store_result(
    app,
    spec: dict,
    device: str,
    median: float,
    *,
    kind: str | None = None,
    layers=None,
    quantization: dict | None = None,
) -> str:
    """A done job with one result, stored as the dispatcher would; returns the spec hash."""
    parsed = parse_spec(spec)
    spec_hash = parsed.content_hash()
    latency = {"median": median, "ci95": [median * 0.95, median * 1.05]}
    if kind == "predicted":
        latency = {"median": median, "interval": [median * 0.8, median * 1.3]}
    with app.state.sessions() as session:
        jobs.upsert_spec(
            session,
            spec_hash=spec_hash,
            model=parsed.model,
            family="mobileone",
            body=parsed.model_dump(mode="json"),
        )
        job, _ = jobs.create_or_coalesce(
            session,
            spec_hash=spec_hash,
            device_class=device,
            fmt="onnx",
            settings={"threads": 1},
            request_key=f"{spec_hash}-{device}",
            user="test",
            kind="predict" if kind == "predicted" else "profile",
        )
        measurement = {"latency_ms": latency, "settings": {"threads": 1}, "layers": layers}
        if quantization:
            measurement["quantization"] = quantization
        if kind:
            measurement["kind"] = kind
        record = record_prediction if kind == "predicted" else record_result  # tables apart
        record(session, job=job, model=parsed.model, runner_id=None, measurement=measurement)
    return spec_hash


@pytest.fixture
def client(settings, tmp_path):
    settings.reference_csv = tmp_path / "ref.csv"
    settings.reference_csv.write_text(REF)
    with TestClient(create_app(settings)) as c:
        yield c


def points_of(data: dict, device: str) -> dict[str, dict]:
    """This service's own points of one device by label (published ones share labels)."""
    return {
        p["label"]: p for p in data["points"] if p["device"] == device and p["kind"] != "published"
    }


def test_points_are_what_was_measured_and_a_custom_spec_needs_its_own_accuracy(client):
    app = client.app
    store_result(app, {"model": "mobileone_s0"}, "cpu-x86_64", 3.0)
    store_result(app, {"model": "mobileone_s1"}, "cpu-x86_64", 2.5)
    custom = {"model": "mobileone_s0", "input": {"height": 160, "width": 160}}
    custom_hash = store_result(app, custom, "cpu-x86_64", 1.5)

    data = client.get("/dashboard/data.json").json()
    cpu = points_of(data, "cpu-x86_64")
    # the 160 px spec is not the published mobileone_s0: listed apart, no borrowed top-1
    assert {"mobileone_s0", "mobileone_s1"} <= set(cpu)
    assert cpu["mobileone_s0"]["kind"] == "measured" and cpu["mobileone_s0"]["top1"] == 71.4
    assert cpu["mobileone_s0"]["latency_low"] == pytest.approx(2.85)
    assert [u["spec_hash"] for u in data["unplotted"]] == [custom_hash]

    attached = client.post(
        "/accuracy",
        json={"model": custom, "top1": 69.5, "resolution": 160, "source": "run 42"},
    )
    assert attached.status_code == 201 and attached.json()["subject"] == custom_hash

    data = client.get("/dashboard/data.json", params={"device": "cpu-x86_64"}).json()
    cpu = points_of(data, "cpu-x86_64")
    mine = cpu[f"mobileone_s0 [{custom_hash[:6]}]"]
    assert mine["kind"] == "user" and mine["top1"] == 69.5 and "run 42" in mine["top1_source"]
    assert cpu["mobileone_s0"]["top1"] == 71.4  # the published model keeps the published figure
    assert data["unplotted"] == []
    # own front: s1 (2.5 ms, 75.9) beats s0 (3.0 ms, 71.4); the custom one is fastest
    keys = {p["key"]: p["label"] for p in data["points"]}
    assert [keys[k] for k in data["frontier"]["cpu-x86_64"]] == [mine["label"], "mobileone_s1"]
    # the published points of this class form their own front, never mixed with measured ones
    assert cpu["mobileone_s1"]["kind"] == "measured"
    published = [p for p in data["points"] if p["kind"] == "published"]
    assert {p["latency_ms"] for p in published} == {9.9, 8.0}
    assert [keys[k] for k in data["published_front"]["cpu-x86_64"]] == ["mobileone_s1"]
    assert "fn T3 (Intel Core i9-9900X CPU (single thread))" in data["sources"]
    assert "apple/ml-mobileone README" in data["sources"]


def test_filters_kinds_predictions_ranks_and_csv(client):
    app = client.app
    store_result(app, {"model": "mobileone_s0"}, "cpu-x86_64", 3.0)
    store_result(app, {"model": "mobileone_s1"}, "cpu-x86_64", 2.5)
    store_result(app, {"model": "mobileone_s1"}, "iphone12-class", 1.1, kind="predicted")

    data = client.get("/dashboard/data.json").json()
    assert data["devices"] == ["cpu-x86_64", "iphone12-class"]
    phone = points_of(data, "iphone12-class")
    assert phone["mobileone_s1"]["kind"] == "predicted"
    assert phone["mobileone_s1"]["latency_high"] == pytest.approx(1.43)
    # ranks: s1 faster than s0 on the CPU (measured); on the phone s0 is published 0.79 ms and s1
    # predicted 1.1 ms (preferred over its published 0.89 ms): a flip
    ranking = data["ranking"]
    assert ranking["ranks"]["mobileone_s1"] == {"cpu-x86_64": 1, "iphone12-class": 2}
    assert ranking["kinds"]["mobileone_s1"]["iphone12-class"] == "predicted"
    assert ranking["flips"] == [
        {
            "faster": "mobileone_s1",
            "slower": "mobileone_s0",
            "device_a": "cpu-x86_64",
            "device_b": "iphone12-class",
        }
    ]

    only_published = client.get(
        "/dashboard/data.json", params={"device": "iphone12-class", "kind": "published"}
    ).json()
    assert {p["kind"] for p in only_published["points"]} == {"published"}
    assert client.get("/dashboard/data.json", params={"family": "fastvit"}).json()["points"] == []
    bad = client.get("/dashboard/data.json", params={"kind": "rumoured"})
    assert bad.status_code == 422 and bad.json()["field"] == "query.kind.0"

    table = client.get("/dashboard/data.csv", params={"device": "cpu-x86_64", "kind": "measured"})
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert table.headers["content-type"].startswith("text/csv")
    assert [(r["label"], r["on_frontier"]) for r in rows] == [
        ("mobileone_s1", "True"),
        ("mobileone_s0", "False"),
    ]


def test_pages_and_offline_assets(client):
    layers = {
        "runs": 2,
        "total_ms": 3.0,
        "mapped": True,
        "by_op": [{"op": "Conv", "ms": 2.0, "share": 0.66}],
        "by_stage": [{"stage": "stages.0", "ms": 1.0, "share": 0.33}],
        "by_block": [],
        "top_nodes": [],
    }
    spec_hash = store_result(
        client.app, {"model": "mobileone_s0"}, "cpu-x86_64", 3.0, layers=layers
    )
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert '<script src="/dashboard/assets/plotly.min.js">' in page.text and "cdn" not in page.text
    assert "Job queue" in page.text and "done: 1" in page.text
    script = client.get("/dashboard/assets/plotly.min.js")
    assert script.status_code == 200 and "plotly.js" in script.text[:2000]
    assert client.get("/static/dashboard.js").status_code == 200

    model = client.get(f"/dashboard/models/{spec_hash}")
    assert model.status_code == 200
    assert "71.4%</b> published" in model.text and "apple/ml-mobileone README" in model.text
    flat = " ".join(model.text.split())
    assert "<td>stages.0</td> <td>1.000</td><td>33.0%</td>" in flat  # per-layer breakdown
    assert "<td>Conv</td> <td>2.000</td>" in flat and "2.850, 3.150" in flat  # history + CI
    assert client.get("/dashboard/models/0123abcd").status_code == 404


def test_accuracy_errors_name_the_field(client):
    assert (
        client.post(
            "/accuracy", json={"spec_hash": "0123abcd", "top1": 70, "source": "x"}
        ).status_code
        == 404
    )
    too_high = client.post("/accuracy", json={"model": "mobileone_s0", "top1": 101, "source": "x"})
    assert too_high.status_code == 422 and too_high.json()["field"] == "top1"
    both = client.post(
        "/accuracy",
        json={"model": "mobileone_s0", "spec_hash": "0123abcd", "top1": 70, "source": "x"},
    )
    assert both.status_code == 422
    no_source = client.post("/accuracy", json={"model": "mobileone_s0", "top1": 70})
    assert no_source.status_code == 422 and no_source.json()["field"] == "source"


def test_dashboard_without_reference_data_says_why(settings):
    with TestClient(create_app(settings)) as client:  # conftest: the override names no file
        assert "No reference data found" in client.get("/dashboard").text


def test_reference_csv_parsing_and_absence(tmp_path):
    csv_path = tmp_path / "ref.csv"
    csv_path.write_text(
        "model,timm_name,top1,params_m,gmacs,source_repo,source_file_or_table\n"
        "A,a_1,76.2,,,org/a,README\nA2,a_1,77.0,,,org/b,paper\n"
        "B,,80.0,,,org/c,x\nC,c_1,,,,org/d,y\n"
    )
    table = reference.load(csv_path)
    assert set(table) == {"a_1"}
    assert table["a_1"].top1 == 76.2 and table["a_1"].source == "org/a README"
    assert reference.load(tmp_path / "missing.csv") == {}


def test_packaged_reference_data_has_sources_and_nothing_points_outside_the_repo():
    refs = reference.load()
    assert refs["fastvit_t8"].top1 == 76.2 and refs["fastvit_t8"].resolution == 256
    assert all(r.source for r in refs.values())
    assert reference.load_latency()[("mobileone_s0", "iphone12-class")].latency_ms > 0
    root = Path(__file__).resolve().parents[2]
    for folder in ("service", "exporters", "devices", "bench", "docker", "docs"):
        for path in (root / folder).rglob("*"):
            if (
                path.suffix in {".py", ".md", ".yml", ".toml", ".html", ".js", ""}
                and path.is_file()
            ):
                text = path.read_text(errors="ignore")
                assert not any(outside in text for outside in OUTSIDE_PATHS), path


def test_metrics_text_format():
    durations = DurationHistogram(bounds=(1.0, 15.0), cumulative=(1, 2), total_s=12.5, count=2)
    text = render_metrics({"done": 2, "queued": 1}, {"cpu-x86_64": 1}, durations).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("latbench_jobs", (("state", "done"),))] == 2
    assert samples[("latbench_jobs", (("state", "failed"),))] == 0
    assert samples[("latbench_queue_depth", (("device_class", "cpu-x86_64"),))] == 1
    assert samples[("latbench_job_duration_seconds_bucket", (("le", "1"),))] == 1
    assert samples[("latbench_job_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    assert samples[("latbench_job_duration_seconds_count", ())] == 2
    assert samples[("latbench_job_duration_seconds_sum", ())] == 12.5


def test_report_is_one_offline_html_file(client, settings, tmp_path):
    store_result(client.app, {"model": "mobileone_s0"}, "cpu-x86_64", 3.0)
    out = tmp_path / "out" / "report.html"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATBENCH_")}
    env |= {
        "LATBENCH_DATA_DIR": str(settings.data_dir),
        "LATBENCH_REFERENCE_CSV": str(settings.reference_csv),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "report",
            "--device",
            "cpu-x86_64",
            "--out",
            str(out),
        ],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert "<script src" not in html and "<link" not in html  # everything inlined, nothing fetched
    assert "Plotly" in html and "window.LATBENCH_REPORT" in html
    data = json.loads(html.split("window.LATBENCH_REPORT = ", 1)[1].split(";</script>", 1)[0])
    assert list(data) == ["cpu-x86_64"]
    assert {p["label"] for p in data["cpu-x86_64"]["points"] if p["kind"] == "measured"} == {
        "mobileone_s0"
    }
    unknown = subprocess.run(
        [sys.executable, "-m", "service.cli", "report", "--device", "gpu-cuda", "--out", str(out)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert unknown.returncode == 2 and "device:" in unknown.stderr


@pytest.mark.browser
def test_report_images_are_drawn_by_headless_chromium(client, settings, tmp_path):
    if not shutil.which("chromium"):
        unavailable("needs Debian's chromium (apt-get install chromium)")
    store_result(client.app, {"model": "mobileone_s0"}, "cpu-x86_64", 3.0)
    with client.app.state.sessions() as session:
        written = report.write(
            session,
            reference_csv=settings.reference_csv,
            devices=["cpu-x86_64"],
            out=tmp_path / "r.html",
            images=True,
        )
    png, svg = (tmp_path / "r-cpu-x86_64.png"), (tmp_path / "r-cpu-x86_64.svg")
    assert written == [tmp_path / "r.html", png, svg]
    assert png.read_bytes().startswith(b"\x89PNG")
    text = svg.read_text()
    assert text.startswith("<svg") and "mobileone_s0" in text and "cpu-x86_64" in text
