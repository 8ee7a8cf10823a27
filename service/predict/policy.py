"""What may stand on a prediction. A prediction is never a measurement: code that decides on
latency (the CI gate) refuses one unless its caller explicitly allows predictions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporters.errors import SpecError

PREDICTED = "predicted"


def is_prediction(result: Mapping[str, Any]) -> bool:
    """True for a stored result (its measurement or ``ResultPublic`` dump) that was predicted."""
    return result.get("kind") == PREDICTED


def require_measured(result: Mapping[str, Any], *, allow_predicted: bool = False) -> None:
    """Refuse a predicted result where a measurement is needed (``allow_predicted`` lifts it)."""
    if is_prediction(result) and not allow_predicted:
        device = result.get("device_class", "its device class")
        raise SpecError(
            f"the latency of {result.get('model', 'this model')} on {device} is a prediction, "
            "not a measurement; attach a runner of that class, or allow predictions explicitly "
            "(allow_predicted)",
            field="allow_predicted",
        )
