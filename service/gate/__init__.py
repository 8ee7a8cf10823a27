"""The gate's side of the decision rule (``service.verdict``): reading a ``latbench compare --json``
document, and refusing a predicted result."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from exporters.errors import SpecError
from service.predict.policy import is_prediction
from service.verdict import (
    FAMILY_ALPHA,
    Decision,
    RatioInterval,
    Verdict,
    decide,
    decide_on,
    pair_confidence,
    percent,
    ratio_interval,
    run_verdict,
)

__all__ = [
    "FAMILY_ALPHA",
    "Decision",
    "RatioInterval",
    "Verdict",
    "decide",
    "decide_from_json",
    "decide_on",
    "pair_confidence",
    "percent",
    "ratio_interval",
    "refuse_predicted",
    "run_verdict",
]


def decide_from_json(
    text: str, threshold: float, *, metric: str = "wall", allow_predicted: bool = False
) -> Decision:
    """A ``latbench compare --json`` document (needs ``ratio`` and ``ci95``).

    ``metric="cpu"`` gates on the ratio of the computing thread's CPU time (``cpu_ratio``, single
    -thread CPU comparisons only): on a host that cannot be dedicated to the measurement it stays
    steady where wall-clock time does not."""
    if metric not in ("wall", "cpu"):
        raise SpecError("metric must be 'wall' or 'cpu'", field="metric")
    try:
        doc: Any = json.loads(text)
        refuse_predicted(doc, allow=allow_predicted)
        if metric == "cpu":
            if not doc.get("cpu_ratio"):
                raise SpecError(
                    "this comparison has no cpu_ratio (only single-thread CPU runs do)",
                    field="metric",
                )
            doc = doc["cpu_ratio"]
        ratio, ci95 = float(doc["ratio"]), tuple(float(v) for v in doc["ci95"])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise SpecError(
            f"not a comparison document ({type(exc).__name__}: {exc}); "
            "write one with `latbench compare A B --json`",
            field="comparison",
        ) from exc
    if len(ci95) != 2:
        raise SpecError("ci95 must have two bounds", field="ci95")
    return decide(ratio, ci95, threshold)


def refuse_predicted(result: Mapping[str, Any], *, allow: bool) -> None:
    """A gate decides on measurements: a predicted result (the predictor's estimate, ``kind:
    "predicted"``) would pass or fail a build on the predictor's error, so it is refused unless
    the caller says otherwise."""
    if not allow and is_prediction(result):
        raise SpecError(
            "this result is predicted by the latency model, not measured; gate on a measured "
            "comparison, or pass --allow-predicted to accept the predictor's error",
            field="kind",
        )
