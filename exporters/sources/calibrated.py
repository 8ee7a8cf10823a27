"""An int8 spec calibrated on a user's own set: what ``--calibration PATH`` makes of a zoo model
or a spec file (the set validated against the model's input and stored by content id)."""

from __future__ import annotations

from pathlib import Path

from exporters.calibration import FIELD, CalibrationStore, read_local
from exporters.errors import SpecError
from exporters.formats import Precision
from exporters.sources import buildable
from exporters.spec import ModelSpec, parse_spec
from exporters.zoo.registry import resolve


def calibrated_spec(ref: str, path: Path, store_root: Path) -> dict[str, object]:
    """CLI: the int8 spec of a zoo model or spec file ``ref`` calibrated on the set at
    ``path`` (validated against the model's input, stored, named by id in the spec)."""
    source = buildable(ref)
    if not isinstance(source, ModelSpec):
        raise SpecError("a calibration set applies to zoo models and spec files", field=FIELD)
    spec = source.model_copy(update={"precision": Precision.INT8})
    set_id = CalibrationStore(store_root).put(read_local(path, resolve(spec).input.shape))
    return parse_spec({**spec.model_dump(mode="json"), "calibration": set_id}).model_dump(
        mode="json"
    )
