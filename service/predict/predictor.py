"""A latency predictor per device class, and the prediction it gives: the library API the
``predict`` job kind and the CLI call.

A prediction is never a measurement: it says so (``kind: predicted``), names the method offered
for the class (the fitted predictor, or the baseline that beat it, named), its version and
training rows, the nested CV error, and an 80% interval of the kind the case is: inside the
domain (every op type of the graph seen in training) or outside it, each with the coverage it
achieved in cross-validation. Outside the domain it abstains unless ``allow_out_of_domain``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from devices.results import PredictedLatency, PredictionRecord
from exporters.errors import SpecError
from exporters.features import GraphFeatures
from exporters.formats import Precision
from exporters.spec import ModelSpec
from service.predict.costmodel import CostModel, Proportional
from service.predict.cv import LEVEL, Calibration
from service.predict.featurecache import CachedFeatures

PREDICTOR_VERSION = 3  # 3: symmetric split-conformal intervals with the finite-sample rank
METHOD = "non-negative least squares on relative error over graph-feature terms"
SCHEME = "leave-one-family-out, nested (terms chosen and intervals calibrated inside each fold)"


class CvPublic(BaseModel):
    """The nested CV verdict on the offered method (errors inside the domain)."""

    method: str
    rows: int
    folds: int
    median_ape_pct: float  # family-held-out cases inside the domain
    spearman: float
    inside_rows: int
    median_ape_pct_all: float  # every family-held-out case (what baselines are compared on)
    abstained_share: float  # family-held-out cases outside the domain: abstained by default
    interval_level: float  # nominal
    coverage_inside: float  # achieved
    coverage_outside: float
    baselines: dict[str, float]  # method -> median abs % error, family held out
    scheme: str = SCHEME


class PredictorInfo(BaseModel):
    version: str
    device_class: str
    method: str
    terms: dict[str, float]  # term -> non-negative cost per unit
    training_rows: int
    training_ids: list[str]
    families: list[str]
    cv: CvPublic
    offered_because: str


class Domain(BaseModel):
    inside: bool  # every op type of the graph occurred in the training rows
    family: str
    family_seen: bool  # informative: the CV error is that of families never seen
    unseen_op_types: list[str]
    note: str | None = None


class Prediction(BaseModel):
    kind: Literal["predicted"] = "predicted"
    model: str
    spec_hash: str
    device_class: str
    latency_ms: float
    interval_ms: tuple[float, float]
    interval_level: float  # nominal
    interval_achieved: float  # coverage of this kind of interval in nested CV
    breakdown_ms: dict[str, float]  # each term's share of latency_ms
    domain: Domain
    predictor: PredictorInfo
    features_stale: bool  # graph features from a cache made with other library versions
    notes: list[str]

    def record(self, *, artifact: str | None = None) -> PredictionRecord:
        """The one shape of a prediction: what a predict job stores and the API serves, and what
        ``latbench predict --json`` prints (with the model beside it)."""
        return PredictionRecord(
            kind="predicted",
            latency_ms=PredictedLatency(
                median=self.latency_ms,
                interval=self.interval_ms,
                level=self.interval_level,
                achieved=self.interval_achieved,
            ),
            predictor=self.predictor.model_dump(exclude={"training_ids"}),
            domain=self.domain.model_dump(),
            breakdown_ms=self.breakdown_ms,
            runner=f"predictor {self.predictor.version}",
            artifact=artifact,
            device={"label": f"{self.device_class} (predicted)", "runtime": "predictor"},
            notes=self.notes,
        )


class OutOfDomainError(SpecError):
    """The graph has op types no training row had: no number unless asked for."""

    def __init__(self, message: str, domain: Domain) -> None:
        self.domain = domain
        super().__init__(message, field="allow_out_of_domain")


Model = CostModel | Proportional


def model_to_dict(model: Model) -> dict[str, Any]:
    if isinstance(model, CostModel):
        return {"type": "cost", "name": model.name, "terms": model.terms, "coef": model.coef}
    return {"type": "proportional", "name": model.name, "key": model.key, "scale": model.scale}


def model_from_dict(data: dict[str, Any]) -> Model:
    if data["type"] == "cost":
        return CostModel(data["name"], tuple(data["terms"]), tuple(data["coef"]))
    return Proportional(data["name"], data["key"], data["scale"])


@dataclass(frozen=True)
class Predictor:
    """The method offered for a class, fitted on all its rows, with its nested CV verdict."""

    device_class: str
    version: str
    label: str  # "predictor (macs+weights)" or "baseline ∝ macs"
    model: Model
    training_ids: tuple[str, ...]
    families: tuple[str, ...]
    op_types: tuple[str, ...]
    calibration: Calibration
    cv: CvPublic
    offered_because: str

    def info(self) -> PredictorInfo:
        terms = (
            dict(zip(self.model.terms, self.model.coef, strict=True))
            if isinstance(self.model, CostModel)
            else {self.model.key: self.model.scale}
        )
        method = f"{METHOD} ({self.model.name})" if isinstance(self.model, CostModel) else ""
        return PredictorInfo(
            version=self.version,
            device_class=self.device_class,
            method=method or f"{self.label}: latency proportional to {self.model.key}",
            terms=terms,
            training_rows=len(self.training_ids),
            training_ids=list(self.training_ids),
            families=list(self.families),
            cv=self.cv,
            offered_because=self.offered_because,
        )

    def domain(
        self, features: GraphFeatures, family: str, precision: Precision | None = None
    ) -> Domain:
        """Inside: every op type was seen in training, and the precision is a float one (every
        training row is a float model's)."""
        unseen = sorted(set(features.op_types) - set(self.op_types))
        family_seen = family in self.families
        quantized = precision is not None and precision.quantized
        notes = []
        if quantized:
            notes.append(f"precision {precision.value}: no training rows at this precision")
        if unseen:
            notes.append(f"op types never seen in training: {', '.join(unseen)}")
        if not family_seen:
            notes.append(f"family {family!r} not in training (the CV error is for such families)")
        return Domain(
            inside=not unseen and not quantized,
            family=family,
            family_seen=family_seen,
            unseen_op_types=unseen,
            note="; ".join(notes) or None,
        )

    def abstain_message(self, model: str, domain: Domain) -> str:
        return (
            f"no prediction of {model} on {self.device_class}: {domain.note} (family "
            f"{domain.family!r}, {'in' if domain.family_seen else 'not in'} training). "
            "Resolve it by measuring: "
            f"attach a runner of {self.device_class}, or measure models with those ops on one and "
            f"run `latbench predictor fit --device {self.device_class}`; or ask for a number "
            "anyway with --allow-out-of-domain (API: allow_out_of_domain), which gives the wide "
            f"interval out-of-domain cases earned in CV (achieved "
            f"{self.cv.coverage_outside:.0%} of nominal {self.cv.interval_level:.0%})"
        )

    def predict(
        self,
        spec: ModelSpec,
        family: str,
        cached: CachedFeatures,
        *,
        allow_out_of_domain: bool = False,
    ) -> Prediction:
        domain = self.domain(cached.features, family, spec.precision)
        if not domain.inside and not allow_out_of_domain:
            raise OutOfDomainError(self.abstain_message(spec.model, domain), domain)
        vector = cached.features.vector()
        latency = self.model.predict(vector)
        low, high = self.calibration.interval(domain.inside)
        achieved = self.cv.coverage_inside if domain.inside else self.cv.coverage_outside
        kind = "inside" if domain.inside else "outside"
        notes = [
            f"a prediction ({self.label}) from published latencies, not a measurement",
            (
                f"{LEVEL:.0%} interval: {achieved:.0%} of held-out cases {kind} the domain fell "
                "in their interval in nested cross-validation"
            ),
        ]
        if not domain.inside:
            notes.append(
                f"outside the training domain ({domain.note}): the interval is the one "
                "out-of-domain cases needed in CV"
            )
        if cached.stale:
            notes.append("graph features were computed with other torch/timm/onnx versions")
        return Prediction(
            model=spec.model,
            spec_hash=spec.content_hash(),
            device_class=self.device_class,
            latency_ms=latency,
            interval_ms=(latency * math.exp(low), latency * math.exp(high)),
            interval_level=LEVEL,
            interval_achieved=achieved,
            breakdown_ms=self.model.breakdown(vector),
            domain=domain,
            predictor=self.info(),
            features_stale=cached.stale,
            notes=notes,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_class": self.device_class,
            "version": self.version,
            "label": self.label,
            "model": model_to_dict(self.model),
            "training_ids": list(self.training_ids),
            "families": list(self.families),
            "op_types": list(self.op_types),
            "calibration": {
                "inside": list(self.calibration.inside),
                "outside": list(self.calibration.outside),
                "inside_cases": self.calibration.inside_cases,
                "outside_cases": self.calibration.outside_cases,
            },
            "cv": self.cv.model_dump(),
            "offered_because": self.offered_because,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Predictor:
        cal = data["calibration"]
        return cls(
            device_class=data["device_class"],
            version=data["version"],
            label=data["label"],
            model=model_from_dict(data["model"]),
            training_ids=tuple(data["training_ids"]),
            families=tuple(data["families"]),
            op_types=tuple(data["op_types"]),
            calibration=Calibration(
                tuple(cal["inside"]),
                tuple(cal["outside"]),
                cal["inside_cases"],
                cal["outside_cases"],
            ),
            cv=CvPublic.model_validate(data["cv"]),
            offered_because=data["offered_because"],
        )
