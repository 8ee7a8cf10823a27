"""The Pareto frontier on known points: dominated points, ties on either axis, one point, none."""

from __future__ import annotations

from dataclasses import dataclass

from service.dashboard.pareto import frontier


@dataclass(frozen=True)
class P:
    name: str
    latency_ms: float
    top1: float


def names(points):
    return [p.name for p in frontier(points)]


def test_dominated_points_are_dropped_and_the_front_is_fastest_first():
    points = [P("a", 1.0, 75.0), P("b", 2.0, 74.0), P("c", 2.5, 79.0), P("e", 0.5, 70.0)]
    assert names(points) == ["e", "a", "c"]  # b: a is faster and more accurate


def test_equal_latency_keeps_only_the_more_accurate():
    assert names([P("low", 1.0, 70.0), P("high", 1.0, 72.0)]) == ["high"]


def test_equal_top1_keeps_only_the_faster():
    assert names([P("slow", 3.0, 79.0), P("fast", 2.5, 79.0), P("base", 1.0, 70.0)]) == [
        "base",
        "fast",
    ]


def test_identical_points_both_stay():
    assert sorted(names([P("x", 1.0, 70.0), P("y", 1.0, 70.0), P("z", 2.0, 69.0)])) == ["x", "y"]


def test_a_single_point_is_its_own_front_and_no_points_no_front():
    assert names([P("only", 4.2, 10.0)]) == ["only"]
    assert names([]) == []


def test_order_of_input_does_not_matter():
    points = [P("a", 1.0, 75.0), P("c", 2.5, 79.0), P("e", 0.5, 70.0), P("d", 9.0, 78.0)]
    assert names(points) == names(list(reversed(points))) == ["e", "a", "c"]
