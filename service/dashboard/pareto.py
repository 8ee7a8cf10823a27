"""The latency/accuracy Pareto frontier, as one pure function tested on known points."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar


class Scored(Protocol):
    @property
    def latency_ms(self) -> float: ...

    @property
    def top1(self) -> float: ...


P = TypeVar("P", bound=Scored)


def frontier(points: Iterable[P]) -> list[P]:
    """The points no other point dominates, fastest first. A point is dominated when another is at
    least as fast and at least as accurate, and strictly better on one axis; so of two points with
    equal latency only the more accurate stays, of two with equal top-1 only the faster, and
    identical points stay together (neither beats the other)."""
    kept: list[P] = []
    best: tuple[float, float] | None = None  # (latency, top-1) of the last kept point
    for point in sorted(points, key=lambda p: (p.latency_ms, -p.top1)):
        if best is None or point.top1 > best[1] or (point.latency_ms, point.top1) == best:
            kept.append(point)
            best = (point.latency_ms, point.top1)
    return kept
