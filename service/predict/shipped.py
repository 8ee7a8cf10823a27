"""Fitted predictors as data: fitted once (``latbench predictor fit``), shipped in the package
(``data/predictors.json``) or saved in the data directory (``latbench predictor fit --device``
with rows measured here), and only *loaded* by the service: no process fits at start.

Each entry is keyed by what it learnt from: the training rows (ids, latencies, graphs), their
feature vectors, the predictor and feature versions and the library versions; a test compares
the shipped keys with the data in the package, so a change to the rows or a library upgrade
that is not followed by a refit fails CI instead of serving a predictor of other data.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from exporters.errors import NotFoundError
from exporters.features import FEATURES_VERSION
from exporters.formats import DeviceClass, parse_device_class
from exporters.spec import ModelSpec, library_versions
from service.predict.cv import LEVEL, Sample
from service.predict.featurecache import FeatureCache, identity_key
from service.predict.fitting import Fit, fit_class
from service.predict.packaged import data_path, report_missing
from service.predict.predictor import PREDICTOR_VERSION, SCHEME, CvPublic, Prediction, Predictor
from service.predict.training import device_classes, graph_spec, published_rows

SHIPPED = "predictors.json"
FIT_LIBRARIES = ("numpy", "scipy")


def versions() -> dict[str, str]:
    """The hashed libraries' versions and those of the fit (a copy: ``library_versions`` is
    cached and keys every spec hash, so adding to it would change every hash in the process)."""
    found = dict(library_versions())
    for name in FIT_LIBRARIES:
        found[name] = metadata.version(name)
    return found


def training_key(samples: list[Sample]) -> str:
    """Digest of exactly what a fit learns from, and of what fits it."""
    rows = [
        (s.row.id, s.row.latency_ms, identity_key(s.row.spec), sorted(s.vector.items()))
        for s in samples
    ]
    payload = [PREDICTOR_VERSION, FEATURES_VERSION, versions(), rows]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def entry(fit: Fit) -> dict[str, Any]:
    """A fitted class as stored: its predictor (None when no method won) and every method's
    nested CV summary."""
    key = training_key(fit.samples)
    summaries = {name: ev.summary() for name, ev in fit.evaluations.items()}
    predictor = None
    if fit.method is not None and fit.model is not None and fit.calibration is not None:
        summary = summaries[fit.method]
        cv = CvPublic(
            method=fit.label,
            rows=summary["rows"],
            folds=summary["folds"],
            median_ape_pct=summary["median_ape_pct"],
            spearman=summary["spearman"],
            inside_rows=summary["inside_rows"],
            median_ape_pct_all=summary["median_ape_pct_all"],
            abstained_share=summary["abstained_share"],
            interval_level=LEVEL,
            coverage_inside=summary["coverage_inside"],
            coverage_outside=summary["coverage_outside"],
            baselines={n: s["median_ape_pct_all"] for n, s in summaries.items() if n != fit.method},
            scheme=SCHEME,
        )
        predictor = Predictor(
            device_class=fit.device_class,
            version=f"{PREDICTOR_VERSION}.{FEATURES_VERSION}-{key[:12]}",
            label=fit.label,
            model=fit.model,
            training_ids=tuple(s.row.id for s in fit.samples),
            families=tuple(sorted({s.row.family for s in fit.samples})),
            op_types=tuple(sorted(set().union(*(s.ops for s in fit.samples)))),
            calibration=fit.calibration,
            cv=cv,
            offered_because=fit.reason,
        ).to_dict()
    return {
        "key": key,
        "library_versions": versions(),
        "predictor": predictor,
        "reason": fit.reason,
        "methods": summaries,
        "skipped": fit.skipped,
    }


def fit_published(device_class: DeviceClass | str) -> Fit:
    """The class fitted on its published rows and the shipped features (no export)."""
    return fit_class(device_class, published_rows(device_class), features=FeatureCache())


def write_shipped(path: Path) -> dict[str, dict[str, Any]]:
    """Fit every class with published rows and write them where the package ships them."""
    entries = {c.value: entry(fit_published(c)) for c in device_classes()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"classes": entries}, indent=1, sort_keys=True))
    tmp.replace(path)
    return entries


def shipped_path() -> Path:
    return data_path(SHIPPED)


def shipped_entries() -> dict[str, dict[str, Any]]:
    """The shipped predictors by class, parsed once per version of the file (GET /devices asks
    on every request; parsing it was a sixth of the route's CPU). Shared: read it, never change
    it."""
    path = shipped_path()
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        report_missing(path, "no shipped predictor: predictions abstain")
        return {}
    return _parsed_shipped(stamp)


@lru_cache(maxsize=1)
def _parsed_shipped(_stamp: int) -> dict[str, dict[str, Any]]:
    return json.loads(shipped_path().read_text())["classes"]


def saved_path(data_dir: Path, device_class: DeviceClass) -> Path:
    return data_dir / "predictors" / f"{device_class.value}.json"


def save(fit: Fit, data_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Keep a class refit with rows measured here (``latbench predictor fit --device``)."""
    path = saved_path(data_dir, DeviceClass(fit.device_class))
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = entry(fit)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stored, indent=1))
    tmp.replace(path)
    return path, stored


def load_entry(device_class: DeviceClass | str, data_dir: Path | None) -> dict[str, Any] | None:
    """The class's refit saved in ``data_dir`` if there is one, else the shipped one."""
    device_class = parse_device_class(device_class)
    if data_dir is not None and saved_path(data_dir, device_class).is_file():
        return json.loads(saved_path(data_dir, device_class).read_text())
    return shipped_entries().get(device_class.value)


def load_predictor(device_class: DeviceClass | str, data_dir: Path | None) -> Predictor:
    """The predictor offered for the class (read, never fitted); NotFoundError says why none."""
    device_class = parse_device_class(device_class)
    found = load_entry(device_class, data_dir)
    resolve = (
        f"attach a runner of {device_class.value}, or measure some models on one and run "
        f"`latbench predictor fit --device {device_class.value}`"
    )
    if found is None:
        raise NotFoundError(f"no predictor for {device_class.value}: no training rows; {resolve}")
    if found["predictor"] is None:
        raise NotFoundError(
            f"no prediction offered for {device_class.value}: no method beats the others in "
            f"cross-validation ({found['reason']}); {resolve}"
        )
    return Predictor.from_dict(found["predictor"])


def predict_spec(
    spec: ModelSpec,
    device_class: DeviceClass | str,
    *,
    data_dir: Path,
    allow_out_of_domain: bool = False,
) -> Prediction:
    """Predict ``spec`` on ``device_class``: features from the caches, or by exporting the spec
    into ``data_dir``'s artifact store (its features are then cached there)."""
    from exporters.artifacts import ArtifactStore
    from exporters.zoo import registry

    predictor = load_predictor(device_class, data_dir)
    graph = graph_spec(spec)
    family = registry.get_model(graph.model).family
    cache = FeatureCache(
        local=data_dir / "predict" / "features.json", store=ArtifactStore(data_dir)
    )
    return predictor.predict(
        graph, family, cache.get(graph), allow_out_of_domain=allow_out_of_domain
    )
