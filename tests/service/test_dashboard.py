from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from service.api.health import render_metrics
from service.dashboard.plot import Point, layout, pareto_frontier
from service.db.jobs import DurationHistogram
from service.reference import load


def test_pareto_frontier_keeps_only_undominated_points():
    points = [
        Point("a", 1.0, 75.0),
        Point("b", 2.0, 74.0),
        Point("c", 2.5, 79.0),
        Point("d", 3.0, 79.0),
        Point("e", 0.5, 70.0),
    ]
    assert [p.label for p in pareto_frontier(points)] == ["e", "a", "c"]


def test_layout_places_faster_left_and_more_accurate_higher():
    plot = layout([Point("slow", 4.0, 80.0), Point("fast", 1.0, 70.0)])
    slow, fast = plot.points
    assert fast.x < slow.x and slow.y < fast.y  # SVG y grows downward
    assert all(p.on_frontier for p in plot.points)


def test_reference_csv_parsing_and_absence(tmp_path):
    csv_path = tmp_path / "ref.csv"
    csv_path.write_text(
        "model,timm_name,top1,params_m,gmacs,source_repo,source_file_or_table\n"
        "A,a_1,76.2,,,org/a,README\nA2,a_1,77.0,,,org/b,paper\n"
        "B,,80.0,,,org/c,x\nC,c_1,,,,org/d,y\n"
    )
    table = load(csv_path)
    assert set(table) == {"a_1"}
    assert table["a_1"].top1 == 76.2 and table["a_1"].source == "org/a README"
    assert load(tmp_path / "missing.csv") == {}


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
