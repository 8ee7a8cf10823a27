"""A latency predictor per device class, and the prediction it gives: the library API a
``predict`` job kind and the CLI call.

    predictor = fit_predictor(DeviceClass.IPHONE12_CLASS, rows, features=FeatureCache())
    prediction = predictor.predict(spec, features.get(spec))

A prediction is never a measurement: it says so (``kind: predicted``), names the predictor's
version and training rows, gives an 80% interval from cross-validated residuals and the
cross-validated error, and says whether the spec is inside the training domain.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from exporters.errors import LatbenchError, NotFoundError, SpecError
from exporters.features import FEATURES_VERSION, GraphFeatures
from exporters.formats import DeviceClass
from exporters.spec import ModelSpec
from service.predict.costmodel import CostModel
from service.predict.cv import INTERVAL, CvError, Sample, families, fit_chosen, nested_cv
from service.predict.featurecache import CachedFeatures, FeatureCache, identity_key
from service.predict.hostcpu import host_latency
from service.predict.training import TrainingRow, graph_spec, parse_device_class, published_rows

PREDICTOR_VERSION = 1
METHOD = "non-negative least squares on relative error over graph-feature terms"


class CvPublic(BaseModel):
    method: str
    rows: int
    folds: int
    median_ape_pct: float
    spearman: float
    scheme: str = "leave-one-family-out (nested: terms chosen inside each fold)"


class PredictorInfo(BaseModel):
    version: str
    device_class: str
    method: str
    terms: dict[str, float]  # term -> non-negative cost per unit
    training_rows: int
    training_ids: list[str]
    families: list[str]
    cv: CvPublic


class Domain(BaseModel):
    inside: bool
    family: str
    family_seen: bool
    unseen_op_types: list[str]
    note: str | None = None


class Prediction(BaseModel):
    kind: Literal["predicted"] = "predicted"
    model: str
    spec_hash: str
    device_class: str
    latency_ms: float
    interval_ms: tuple[float, float]
    interval_level: float
    breakdown_ms: dict[str, float]  # each term's share of latency_ms
    domain: Domain
    predictor: PredictorInfo
    features_stale: bool  # graph features from a cache made with other library versions
    notes: list[str]


@dataclass(frozen=True)
class Predictor:
    """A fitted cost model with what it was trained on and how well that generalised."""

    device_class: str
    version: str
    model: CostModel
    training_ids: tuple[str, ...]
    families: tuple[str, ...]
    op_types: tuple[str, ...]
    cv: CvError

    def info(self) -> PredictorInfo:
        return PredictorInfo(
            version=self.version,
            device_class=self.device_class,
            method=f"{METHOD} ({self.model.name})",
            terms=dict(zip(self.model.terms, self.model.coef, strict=True)),
            training_rows=len(self.training_ids),
            training_ids=list(self.training_ids),
            families=list(self.families),
            cv=CvPublic(
                method=self.cv.method,
                rows=self.cv.rows,
                folds=self.cv.folds,
                median_ape_pct=self.cv.median_ape_pct,
                spearman=self.cv.spearman,
            ),
        )

    def domain(self, features: GraphFeatures, family: str) -> Domain:
        unseen = sorted(set(features.op_types) - set(self.op_types))
        family_seen = family in self.families
        notes = []
        if unseen:
            notes.append(f"op types never seen in training: {', '.join(unseen)}")
        if not family_seen:
            notes.append(f"family {family!r} not in training; CV error is for unseen families")
        inside = not unseen and family_seen
        note = "; ".join(notes) or None
        return Domain(
            inside=inside, family=family, family_seen=family_seen, unseen_op_types=unseen, note=note
        )

    def predict(self, spec: ModelSpec, family: str, cached: CachedFeatures) -> Prediction:
        vector = cached.features.vector()
        latency = self.model.predict(vector)
        low, high = self.cv.log_ratio_interval
        domain = self.domain(cached.features, family)
        if spec.precision is not None and spec.precision.quantized:  # trained on float rows only
            why = f"precision {spec.precision.value}: no training rows at this precision"
            note = "; ".join([why, *([domain.note] if domain.note else [])])
            domain = domain.model_copy(update={"inside": False, "note": note})
        notes = ["a prediction from published latencies, not a measurement"]
        if not domain.inside:
            notes.append(f"outside the training domain: {domain.note}")
        if cached.stale:
            notes.append("graph features were computed with other torch/timm/onnx versions")
        return Prediction(
            model=spec.model,
            spec_hash=spec.content_hash(),
            device_class=self.device_class,
            latency_ms=latency,
            interval_ms=(latency * math.exp(low), latency * math.exp(high)),
            interval_level=INTERVAL[1] - INTERVAL[0],
            breakdown_ms=self.model.breakdown(vector),
            domain=domain,
            predictor=self.info(),
            features_stale=cached.stale,
            notes=notes,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Predictor:
        model, cv = data["model"], data["cv"]
        return cls(
            device_class=data["device_class"],
            version=data["version"],
            model=CostModel(model["name"], tuple(model["terms"]), tuple(model["coef"])),
            training_ids=tuple(data["training_ids"]),
            families=tuple(data["families"]),
            op_types=tuple(data["op_types"]),
            cv=CvError(**{**cv, "log_ratio_interval": tuple(cv["log_ratio_interval"])}),
        )


@dataclass(frozen=True)
class FitReport:
    predictor: Predictor
    skipped: dict[str, str]  # row id -> why it has no features


def samples_for(
    rows: list[TrainingRow], features: FeatureCache
) -> tuple[list[Sample], dict[str, GraphFeatures], dict[str, str]]:
    """Rows with their feature vectors (plus ``host_ms`` where this host measured the spec);
    rows whose features cannot be had are returned as skipped, with the reason."""
    host = host_latency()
    samples, graphs, skipped = [], {}, {}
    for row in rows:
        try:
            cached = features.get(row.spec)
        except LatbenchError as exc:  # no store to export into, or the export failed
            skipped[row.id] = str(exc)
            continue
        vector = cached.features.vector()
        if identity_key(row.spec) in host:
            vector["host_ms"] = host[identity_key(row.spec)]
        samples.append(Sample(row, vector))
        graphs[row.id] = cached.features
    return samples, graphs, skipped


def fit_predictor(
    device_class: DeviceClass | str, rows: list[TrainingRow], *, features: FeatureCache
) -> FitReport:
    """Choose terms and fit on ``rows`` (all of one class); the CV error is nested LOFO."""
    device_class = parse_device_class(device_class)
    samples, graphs, skipped = samples_for(rows, features)
    if len(families(samples)) < 2:
        raise SpecError(
            f"{device_class.value} has training rows from {len(families(samples))} model "
            "families; leave-one-family-out needs at least 2",
            field="device",
        )
    model = fit_chosen(samples)
    ids = tuple(s.row.id for s in samples)
    predictor = Predictor(
        device_class=device_class.value,
        version=_version(samples),
        model=model,
        training_ids=ids,
        families=tuple(families(samples)),
        op_types=tuple(sorted({op for g in graphs.values() for op in g.op_types})),
        cv=nested_cv(samples).error(),
    )
    return FitReport(predictor, skipped)


def _version(samples: list[Sample]) -> str:
    """Predictor version + a digest of exactly what it learnt from (ids, latencies, features)."""
    payload = [(s.row.id, s.row.latency_ms, s.row.spec_hash) for s in samples]
    digest = hashlib.sha256(json.dumps([PREDICTOR_VERSION, FEATURES_VERSION, payload]).encode())
    return f"{PREDICTOR_VERSION}.{FEATURES_VERSION}-{digest.hexdigest()[:12]}"


def saved_path(data_dir: Path, device_class: DeviceClass) -> Path:
    return data_dir / "predictors" / f"{device_class.value}.json"


def save(predictor: Predictor, data_dir: Path) -> Path:
    path = saved_path(data_dir, DeviceClass(predictor.device_class))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(predictor.to_dict(), indent=1))
    tmp.replace(path)
    return path


def load_predictor(device_class: DeviceClass | str, data_dir: Path | None) -> Predictor:
    """The refit predictor saved in ``data_dir`` (``latbench predictor fit``) if there is one,
    else one fitted on the shipped published rows and shipped features."""
    device_class = parse_device_class(device_class)
    if data_dir is not None and saved_path(data_dir, device_class).is_file():
        data = json.loads(saved_path(data_dir, device_class).read_text())
        return Predictor.from_dict(data)
    rows = published_rows(device_class)
    if not rows:
        raise NotFoundError(
            f"no predictor for {device_class.value}: no published rows; measure some models "
            f"on a runner of that class, then run `latbench predictor fit --device {device_class.value}`"
        )
    return fit_predictor(device_class, rows, features=FeatureCache()).predictor


def predict_spec(spec: ModelSpec, device_class: DeviceClass | str, *, data_dir: Path) -> Prediction:
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
    return predictor.predict(graph, family, cache.get(graph))
