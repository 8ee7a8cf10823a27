"""Training rows of the latency predictors: published latencies (package data, each row citing
its source) and the measurements runners posted for a device class.

A row is a spec (zoo model at an explicit input size), the per-image latency on a device of the
class, the family (the cross-validation group) and where the number comes from. Rules applied to
the published table, so every row is what latbench itself would build:
- only rows with a timm name whose latency (or throughput) is given on a device that stands for a
  class (``reference.PUBLISHED_DEVICES``); throughput becomes per-image time (1000 / img/s);
- a resolution the source does not state is the model's released input size (its timm config);
- rows whose source measured a model other than the stock timm one are left out (``EXCLUDED``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from exporters.formats import DeviceClass, parse_device_class
from exporters.spec import ModelSpec, parse_spec
from service import reference
from service.reference import PUBLISHED_DEVICES

# (source model name, why it is not the stock timm model latbench builds)
EXCLUDED = {
    "MobileNetV3-L (GeLU variant)": "hard-swish replaced by GELU; timm builds hard-swish",
}


@dataclass(frozen=True)
class TrainingRow:
    """One latency of one spec on one device class."""

    id: str  # "published:<csv line>" or "measured:<result id>"
    model: str
    family: str  # zoo family: the leave-one-family-out group
    device_class: str
    latency_ms: float  # per image, batch as in ``spec``
    spec: ModelSpec  # model + explicit input: what the features are extracted from
    source: str  # citation (published) or runner id (measured)
    device: str  # the device as the source names it

    @property
    def spec_hash(self) -> str:
        return self.spec.content_hash()


def device_classes() -> tuple[DeviceClass, ...]:
    """Classes that have published training data."""
    return tuple(DeviceClass(name) for name in PUBLISHED_DEVICES)


def published_rows(device_class: DeviceClass | str) -> list[TrainingRow]:
    """The published rows of ``device_class`` (empty for a class without published data)."""
    device_class = parse_device_class(device_class)
    devices = PUBLISHED_DEVICES.get(device_class.value, ())
    rows = []
    for line, raw in enumerate(reference.rows(), start=2):
        if raw["device"] not in devices or not raw["timm_name"] or raw["model"] in EXCLUDED:
            continue
        latency = _per_image_ms(raw)
        if latency is None:
            continue
        rows.append(
            _row(
                row_id=f"published:{line}",
                model=raw["timm_name"],
                resolution=int(raw["resolution"]) if raw["resolution"] else None,
                device_class=device_class,
                latency_ms=latency,
                source=f"{raw['source_repo']} {raw['source_file_or_table']}".strip(),
                device=raw["device"],
            )
        )
    return rows


def rows_from_results(results: Iterable[tuple[Any, Any]]) -> list[TrainingRow]:
    """Training rows from stored results: ``(ResultRow, SpecRow)`` pairs, as
    ``service.db.results.list_results`` lists them (median latency; the spec as stored)."""
    rows = []
    for result, spec_row in results:
        spec = parse_spec(spec_row.body)
        rows.append(
            TrainingRow(
                id=f"measured:{result.id}",
                model=spec.model,
                family=spec_row.family or _family(spec.model),
                device_class=result.device_class,
                latency_ms=float(result.median_ms),
                spec=graph_spec(spec),
                source=f"runner {result.runner_id or 'local'}",
                device=str((result.measurement or {}).get("device", {}).get("label", "")),
            )
        )
    return rows


def _row(
    *,
    row_id: str,
    model: str,
    resolution: int | None,
    device_class: DeviceClass,
    latency_ms: float,
    source: str,
    device: str,
) -> TrainingRow:
    from exporters.zoo import registry

    entry = registry.get_model(model)
    side = resolution or entry.default_input().height
    spec = parse_spec({"model": model, "input": {"height": side, "width": side}})
    return TrainingRow(
        id=row_id,
        model=model,
        family=entry.family,
        device_class=device_class.value,
        latency_ms=latency_ms,
        spec=spec,
        source=source,
        device=device,
    )


def graph_spec(spec: ModelSpec) -> ModelSpec:
    """The fields that shape the graph, input made explicit (the model's own when omitted), so
    ``{"model": "repvit_m1_1"}`` finds the features of the training row of the same graph."""
    from exporters.zoo import registry

    resolved = registry.resolve(spec)  # checks overrides and input before anything is built
    return parse_spec(
        {"model": spec.model, "overrides": spec.overrides, "input": resolved.input.model_dump()}
    )


def _family(model: str) -> str:
    from exporters.zoo import registry

    return registry.get_model(model).family


def _per_image_ms(raw: dict[str, str]) -> float | None:
    if raw["latency_ms"]:
        return float(raw["latency_ms"])
    if raw["throughput_img_s"]:
        return 1000.0 / float(raw["throughput_img_s"])
    return None
