"""The regressors: non-negative per-term costs (the predictor) and one-term proportional baselines.

Both minimise *relative* squared error (each row divided by its latency), so a 0.8 ms model
counts as much as an 8 ms one. The predictor's terms are non-negative (``scipy.optimize.nnls``):
a MAC, a byte moved or a node launched can only cost time, which keeps the fit explainable
("this graph pays 0.31 ms for its depthwise convolutions") and stops cancelling terms from
fitting noise on a few dozen rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Vector = dict[str, float]  # exporters.features.GraphFeatures.vector() plus "host_ms" when known


def _sum(*keys: str) -> Callable[[Vector], float]:
    return lambda v: sum(v[k] for k in keys)


ACTIVATIONS = ("act_relu", "act_sigmoid", "act_hardswish", "act_gelu", "act_tanh", "act_other")

# Named terms over the flat feature vector, in the units the coefficients are reported in.
TERMS: dict[str, Callable[[Vector], float]] = {
    "overhead": lambda v: 1.0,
    "gmacs": lambda v: v["macs.total"] / 1e9,
    "gmacs_conv_dense": lambda v: v["macs.conv_dense"] / 1e9,
    "gmacs_conv_depthwise": lambda v: (v["macs.conv_dw"] + v["macs.conv_group"]) / 1e9,
    "gmacs_matmul": lambda v: (v["macs.matmul_weight"] + v["macs.matmul_act"]) / 1e9,
    "gmacs_attention": lambda v: v["macs.matmul_act"] / 1e9,
    "mb_activations": lambda v: v["activation_bytes"] / 1e6,
    "mb_weights": lambda v: v["params"] * 4 / 1e6,  # read once per inference (fp32 size)
    "mb_memory_ops": lambda v: _sum("bytes.memory")(v) / 1e6,
    "mb_elementwise": lambda v: (
        _sum("bytes.elementwise", *(f"bytes.{a}" for a in ACTIVATIONS))(v) / 1e6
    ),
    "mb_norm_pool": lambda v: _sum("bytes.norm", "bytes.reduce", "bytes.pool")(v) / 1e6,
    "m_softmax_elements": lambda v: v["softmax_elements"] / 1e6,
    "nodes": lambda v: v["count.nodes"],
    "memory_nodes": lambda v: v["count.memory"],
}

# Candidate term sets; leave-one-family-out cross-validation picks one per device class.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "macs+nodes": ("overhead", "gmacs", "nodes"),
    "macs+weights": ("overhead", "gmacs", "mb_weights"),
    "macs+bytes+nodes": ("overhead", "gmacs", "mb_activations", "nodes"),
    "macs+weights+activations": ("overhead", "gmacs", "mb_weights", "mb_activations"),
    "op-split": (
        "overhead",
        "gmacs_conv_dense",
        "gmacs_conv_depthwise",
        "gmacs_matmul",
        "mb_activations",
        "nodes",
    ),
    "per-category": (
        "overhead",
        "gmacs_conv_dense",
        "gmacs_conv_depthwise",
        "gmacs_matmul",
        "gmacs_attention",
        "mb_memory_ops",
        "mb_elementwise",
        "mb_norm_pool",
        "m_softmax_elements",
        "nodes",
        "memory_nodes",
    ),
}

BASELINES: dict[str, str] = {  # name -> the one vector entry latency is taken proportional to
    "macs": "macs.total",
    "params": "params",
    "host-cpu": "host_ms",
}


@dataclass(frozen=True)
class CostModel:
    """latency_ms = sum(coef[t] * term_t(graph)), every coef >= 0."""

    name: str
    terms: tuple[str, ...]
    coef: tuple[float, ...]

    @classmethod
    def fit(cls, name: str, vectors: list[Vector], latency_ms: np.ndarray) -> CostModel:
        from scipy.optimize import nnls

        terms = CANDIDATES[name]
        design = np.array([[TERMS[t](v) for t in terms] for v in vectors])
        scale = np.abs(design).max(axis=0)
        scale[scale == 0] = 1.0
        weighted = design / scale / latency_ms[:, None]
        solution, _ = nnls(weighted, np.ones(len(vectors)))
        return cls(name, terms, tuple(float(c) for c in solution / scale))

    def predict(self, vector: Vector) -> float:
        return float(sum(c * TERMS[t](vector) for t, c in zip(self.terms, self.coef, strict=True)))

    def breakdown(self, vector: Vector) -> dict[str, float]:
        """Each term's share of the predicted latency, in ms."""
        return {t: c * TERMS[t](vector) for t, c in zip(self.terms, self.coef, strict=True)}


@dataclass(frozen=True)
class Proportional:
    """Baseline: latency_ms = scale * vector[key] (relative least squares through the origin)."""

    name: str
    key: str
    scale: float

    @classmethod
    def fit(cls, name: str, vectors: list[Vector], latency_ms: np.ndarray) -> Proportional:
        key = BASELINES[name]
        ratio = np.array([v[key] for v in vectors]) / latency_ms
        return cls(name, key, float(ratio.sum() / (ratio**2).sum()))

    def predict(self, vector: Vector) -> float:
        return self.scale * vector[self.key]

    def breakdown(self, vector: Vector) -> dict[str, float]:
        return {self.key: self.predict(vector)}
