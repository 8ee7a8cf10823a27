"""The service side of predictions: which device classes have a predictor, the predictor of a
class (fitted once per process and data directory, refit when ``latbench predictor fit`` saves a
new one), and the ``predict`` kind's work: an exported ONNX graph to a ``PredictionRecord``."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from devices.results import PredictedLatency, PredictionRecord
from exporters.errors import LatbenchError, NotFoundError
from exporters.features import onnx_features
from exporters.formats import DeviceClass
from exporters.spec import parse_spec
from service.predict.featurecache import FeatureCache
from service.predict.predictor import Predictor, load_predictor, saved_path
from service.predict.training import device_classes, graph_spec


def has_predictor(device_class: str, data_dir: Path | None) -> bool:
    """Cheap (no fit, fit for a request path): the class has published training rows, or a
    predictor refit from stored measurements is saved in ``data_dir``."""
    if device_class in {c.value for c in device_classes()}:
        return True
    try:
        return data_dir is not None and saved_path(data_dir, DeviceClass(device_class)).is_file()
    except ValueError:
        return False


def predictor_for(device_class: str, data_dir: Path | None) -> Predictor | None:
    """The class's predictor, or None when it has none (no training data, or too little)."""
    try:
        saved = saved_path(data_dir, DeviceClass(device_class)) if data_dir else None
    except ValueError:
        return None
    stamp = saved.stat().st_mtime_ns if saved and saved.is_file() else None
    with _fitting:  # one fit at a time: concurrent first requests wait for it, never repeat it
        return _fitted(device_class, data_dir, stamp)


_fitting = threading.Lock()


@lru_cache(maxsize=32)
def _fitted(device_class: str, data_dir: Path | None, stamp: int | None) -> Predictor | None:
    """Fitting runs nested cross-validation (seconds): once per class, data dir and saved file."""
    try:
        return load_predictor(device_class, data_dir)
    except LatbenchError:  # no published rows and nothing refit, or under two families
        return None


def predictors(data_dir: Path | None) -> list[Predictor]:
    """Every class's predictor: classes with published rows and those refit in ``data_dir``."""
    saved = sorted(p.stem for p in (data_dir / "predictors").glob("*.json")) if data_dir else []
    names = dict.fromkeys([c.value for c in device_classes()] + saved)
    found = (predictor_for(name, data_dir) for name in names)
    return [p for p in found if p is not None]


def predict_artifact(
    onnx_path: Path, *, device_class: str, spec: dict[str, Any], family: str, data_dir: Path
) -> PredictionRecord:
    """Predict the latency of the exported graph at ``onnx_path`` on ``device_class``; features
    come from the caches when known, else from the file (then kept in the data dir's cache)."""
    predictor = predictor_for(device_class, data_dir)
    if predictor is None:
        raise NotFoundError(f"no predictor for {device_class}: it has no usable training data")
    graph = graph_spec(parse_spec(spec))
    cache = FeatureCache(local=data_dir / "predict" / "features.json")
    cached = cache.lookup(graph) or cache.put(graph, onnx_features(onnx_path))
    prediction = predictor.predict(graph, family, cached)
    return PredictionRecord(
        kind="predicted",
        latency_ms=PredictedLatency(
            median=prediction.latency_ms,
            interval=prediction.interval_ms,
            level=prediction.interval_level,
        ),
        predictor=prediction.predictor.model_dump(exclude={"training_ids"}),
        domain=prediction.domain.model_dump(),
        breakdown_ms=prediction.breakdown_ms,
        runner=f"predictor {predictor.version}",
        artifact=onnx_path.name,
        device={"label": f"{device_class} (predicted)", "runtime": "predictor"},
        notes=prediction.notes,
    )
