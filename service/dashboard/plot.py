"""Latency/accuracy scatter geometry: pure functions, so the frontier logic is tested alone."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, MARGIN = 640, 400, 56


@dataclass(frozen=True)
class Point:
    label: str
    latency_ms: float
    top1: float


@dataclass(frozen=True)
class Placed:
    point: Point
    x: float
    y: float
    on_frontier: bool


@dataclass(frozen=True)
class Plot:
    points: tuple[Placed, ...]
    frontier: str  # SVG polyline "x,y x,y ..."
    x_ticks: tuple[tuple[float, str], ...]
    y_ticks: tuple[tuple[float, str], ...]
    width: int = WIDTH
    height: int = HEIGHT
    margin: int = MARGIN


def pareto_frontier(points: list[Point]) -> list[Point]:
    """Points no other point beats on both axes (faster and at least as accurate), fastest first."""
    frontier: list[Point] = []
    for point in sorted(points, key=lambda p: (p.latency_ms, -p.top1)):
        if not frontier or point.top1 > frontier[-1].top1:
            frontier.append(point)
    return frontier


def _ticks(low: float, high: float, to_pixel, fmt: str, count: int = 5):
    step = (high - low) / (count - 1)
    return tuple((to_pixel(low + i * step), format(low + i * step, fmt)) for i in range(count))


def layout(points: list[Point]) -> Plot:
    xs = [p.latency_ms for p in points] or [0.0, 1.0]
    ys = [p.top1 for p in points] or [0.0, 1.0]
    x_lo, x_hi = 0.0, max(xs) * 1.1 or 1.0
    y_lo, y_hi = min(ys) - 1.0, max(ys) + 1.0

    def px(value: float) -> float:
        return round(MARGIN + (value - x_lo) / (x_hi - x_lo) * (WIDTH - 2 * MARGIN), 1)

    def py(value: float) -> float:
        return round(HEIGHT - MARGIN - (value - y_lo) / (y_hi - y_lo) * (HEIGHT - 2 * MARGIN), 1)

    front = pareto_frontier(points)
    placed = tuple(Placed(p, px(p.latency_ms), py(p.top1), p in front) for p in points)
    line = " ".join(f"{px(p.latency_ms)},{py(p.top1)}" for p in front)
    return Plot(placed, line, _ticks(x_lo, x_hi, px, ".2f"), _ticks(y_lo, y_hi, py, ".1f"))
