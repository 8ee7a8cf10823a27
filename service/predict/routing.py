"""Measure, predict or refuse: decided once per requested device class, by one pure function.

A class that has runners registered (online or not) is a class this installation measures: its
request is queued for them, never answered by a guess because a runner's heartbeat is late or it
registers a second after the request; a prediction is made there only when the user asks for
one. A class nobody here can measure is predicted when it offers a predictor (and the server
runs the server-side step that makes predictions), otherwise queued for a runner to come.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from exporters.errors import SpecError


class Route(Enum):
    MEASURE = "measure"
    PREDICT = "predict"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decision:
    device_class: str
    route: Route
    reason: str


def decide(
    device_class: str,
    *,
    requested: bool | None,
    upload: bool,
    measured_here: bool,
    offers_prediction: bool,
    predicts_here: bool,
) -> Decision:
    """``requested``: the user's ``predict`` (True: a prediction, False: a measurement, None:
    ours to choose); ``upload``: the request names an uploaded artifact (measured as given);
    ``measured_here``: runners of the class are registered (online or not) or the embedded
    runner serves it; ``offers_prediction``: the class has a predictor offered (it beat its
    baselines); ``predicts_here``: this server runs the step that makes predictions."""

    def answer(route: Route, reason: str) -> Decision:
        return Decision(device_class, route, reason)

    if requested is False:
        return answer(Route.MEASURE, "a measurement was asked for")
    can_predict = offers_prediction and predicts_here and not upload
    if requested:
        if can_predict:
            return answer(Route.PREDICT, "a prediction was asked for")
        why = (
            "an uploaded artifact is measured as given, never predicted"
            if upload
            else f"{device_class} offers no prediction (no method beat its baselines in "
            "cross-validation, or no training rows)"
            if not offers_prediction
            else "this server runs no step that makes predictions (no export worker)"
        )
        return answer(Route.REFUSE, why)
    if measured_here:
        return answer(Route.MEASURE, f"{device_class} has runners registered here")
    if can_predict:
        return answer(Route.PREDICT, f"no runner of {device_class} is registered here")
    return answer(Route.MEASURE, f"queued until a runner of {device_class} registers")


def refusal(decisions: list[Decision]) -> SpecError | None:
    """The error to answer when any class's request is refused (names each and why)."""
    refused = [d for d in decisions if d.route is Route.REFUSE]
    if not refused:
        return None
    return SpecError("; ".join(f"{d.device_class}: {d.reason}" for d in refused), field="predict")
