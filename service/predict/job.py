"""The service side of predictions: which device classes offer one, the predictor of a class
(read from package data or the data directory's refit: never fitted in a server process), and
the ``predict`` kind's work: an exported ONNX graph to a ``PredictionRecord``."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from devices.results import PredictionRecord
from exporters.errors import LatbenchError, NotFoundError
from exporters.features import onnx_features
from exporters.formats import DeviceClass
from exporters.spec import parse_spec
from service.predict.featurecache import FeatureCache
from service.predict.predictor import Predictor
from service.predict.shipped import load_predictor, saved_path, shipped_entries
from service.predict.training import graph_spec


def _stamp(device_class: str, data_dir: Path | None) -> int | None:
    """The saved refit's mtime (a new ``latbench predictor fit`` is picked up), or None."""
    try:
        saved = saved_path(data_dir, DeviceClass(device_class)) if data_dir else None
    except ValueError:
        return None
    return saved.stat().st_mtime_ns if saved and saved.is_file() else None


def predictor_for(device_class: str, data_dir: Path | None) -> Predictor | None:
    """The class's predictor, or None when it offers none (no data, or no method won)."""
    with _loading:
        return _loaded(device_class, data_dir, _stamp(device_class, data_dir))


def has_predictor(device_class: str, data_dir: Path | None) -> bool:
    return predictor_for(device_class, data_dir) is not None


_loading = threading.Lock()


@lru_cache(maxsize=32)
def _loaded(device_class: str, data_dir: Path | None, stamp: int | None) -> Predictor | None:
    try:
        return load_predictor(device_class, data_dir)
    except LatbenchError:  # unknown class, no training rows, or no method beat the others
        return None


def predictors(data_dir: Path | None) -> list[Predictor]:
    """Every class's offered predictor: shipped ones and those refit in ``data_dir``."""
    saved = sorted(p.stem for p in (data_dir / "predictors").glob("*.json")) if data_dir else []
    names = dict.fromkeys([*shipped_entries(), *saved])
    found = (predictor_for(name, data_dir) for name in names)
    return [p for p in found if p is not None]


def predict_artifact(
    onnx_path: Path,
    *,
    device_class: str,
    spec: dict[str, Any],
    family: str,
    data_dir: Path,
    allow_out_of_domain: bool = False,
) -> PredictionRecord:
    """Predict the latency of the exported graph at ``onnx_path`` on ``device_class``; features
    come from the caches when known, else from the file (then kept in the data dir's cache).
    Outside the domain it raises ``OutOfDomainError`` (the job fails with why and what would
    resolve it) unless ``allow_out_of_domain``."""
    predictor = predictor_for(device_class, data_dir)
    if predictor is None:
        raise NotFoundError(f"no predictor for {device_class}: it offers no prediction")
    graph = graph_spec(parse_spec(spec))
    cache = FeatureCache(local=data_dir / "predict" / "features.json")
    cached = cache.lookup(graph) or cache.put(graph, onnx_features(onnx_path))
    prediction = predictor.predict(graph, family, cached, allow_out_of_domain=allow_out_of_domain)
    return prediction.record(artifact=onnx_path.name)
