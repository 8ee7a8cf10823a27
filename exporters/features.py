"""Graph features of a deploy-form ONNX artifact, for latency prediction.

FLOPs alone rank models badly on phones: a reshape, a softmax or a hard-swish costs time in
proportion to the bytes it moves, not to MACs. So every node is put in a *category* (dense /
depthwise / grouped convolution, weight or activation matmul, normalisation, activation kind,
elementwise, memory-bound reshuffles, pooling, reductions) and each category gets its MACs, the
bytes its nodes read and write (shapes from ONNX shape inference, fp32 counted as stored), and
its node count. The op types seen are kept too: a predictor uses them to say whether a graph is
inside what it was trained on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from math import prod
from pathlib import Path
from typing import Any

from exporters.errors import ExportError

FEATURES_VERSION = 1

_CATEGORIES: dict[str, tuple[str, ...]] = {
    "norm": (
        "BatchNormalization",
        "LayerNormalization",
        "InstanceNormalization",
        "GroupNormalization",
        "LpNormalization",
    ),
    "softmax": ("Softmax", "LogSoftmax"),
    "act_relu": ("Relu", "LeakyRelu", "PRelu", "Clip"),
    "act_sigmoid": ("Sigmoid", "HardSigmoid"),
    "act_hardswish": ("HardSwish",),
    "act_gelu": ("Gelu", "Erf"),  # torch.onnx writes exact GELU as x * (1 + erf(x / sqrt 2)) / 2
    "act_tanh": ("Tanh",),
    "act_other": ("Softplus", "Elu", "Selu", "Mish", "Celu", "ThresholdedRelu"),
    "elementwise": (
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Sqrt",
        "Exp",
        "Log",
        "Neg",
        "Abs",
        "Reciprocal",
        "Where",
        "Max",
        "Min",
        "Equal",
        "Less",
        "Greater",
        "Not",
        "And",
        "Or",
        "Cast",
        "Floor",
        "Ceil",
        "Round",
        "Sin",
        "Cos",
    ),
    "memory": (
        "Reshape",
        "Transpose",
        "Concat",
        "Split",
        "Slice",
        "Gather",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Expand",
        "Pad",
        "Tile",
        "DepthToSpace",
        "SpaceToDepth",
        "Resize",
        "Identity",
    ),
    "pool": ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool"),
    "reduce": (
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL2",
        "ReduceSumSquare",
    ),
}
_CATEGORY_OF = {op: category for category, ops in _CATEGORIES.items() for op in ops}
CONV_CATEGORIES = ("conv_dense", "conv_dw", "conv_group")
MATMUL_CATEGORIES = ("matmul_weight", "matmul_act")
CATEGORIES = (*CONV_CATEGORIES, *MATMUL_CATEGORIES, *_CATEGORIES, "other")
_FREE = {
    "Constant",
    "Shape",
    "Size",
    "ConstantOfShape",
    "Range",
}  # shape arithmetic, no tensor work


@dataclass(frozen=True)
class GraphFeatures:
    """Per-category cost of one graph at its exported input shape (batch included)."""

    macs: dict[str, int]
    bytes_read: dict[str, int]
    bytes_written: dict[str, int]
    counts: dict[str, int]
    op_types: tuple[str, ...]  # every op type in the graph, domain-qualified when not ai.onnx
    kernel_sizes: dict[str, int]  # "3x3" -> number of convolutions with that kernel
    params: int  # elements of the initializers
    activation_bytes: int  # bytes written by all nodes
    max_activation_bytes: int  # largest single tensor written
    softmax_elements: int  # attention-map size: elements normalised by Softmax
    unknown_shape_nodes: int  # nodes whose bytes could not be counted (shape inference gaps)
    version: int = FEATURES_VERSION
    attention_matmuls: list[list[int]] = field(
        default_factory=list
    )  # [M, K, N] activation x activation

    @property
    def total_macs(self) -> int:
        return sum(self.macs.values())

    def vector(self) -> dict[str, float]:
        """Flat numeric features: ``macs.<cat>``, ``bytes.<cat>`` (read + written), ``count.<cat>``,
        plus the graph-wide figures. Every category is present, so vectors line up."""
        flat: dict[str, float] = {}
        for category in CATEGORIES:
            flat[f"macs.{category}"] = float(self.macs.get(category, 0))
            flat[f"bytes.{category}"] = float(
                self.bytes_read.get(category, 0) + self.bytes_written.get(category, 0)
            )
            flat[f"count.{category}"] = float(self.counts.get(category, 0))
        flat["macs.total"] = float(self.total_macs)
        flat["count.nodes"] = float(sum(self.counts.values()))
        flat["params"] = float(self.params)
        flat["activation_bytes"] = float(self.activation_bytes)
        flat["max_activation_bytes"] = float(self.max_activation_bytes)
        flat["softmax_elements"] = float(self.softmax_elements)
        return flat

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphFeatures:
        return cls(**{**data, "op_types": tuple(data["op_types"])})


def onnx_features(path: Path) -> GraphFeatures:
    """Features of the ONNX model at ``path`` (shape inference runs on a loaded copy)."""
    import onnx

    try:
        model = onnx.load(str(path))
        if model.functions:
            model = onnx.inliner.inline_local_functions(model)
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except (OSError, onnx.onnx_cpp2py_export.shape_inference.InferenceError) as exc:
        raise ExportError("features", f"cannot read {Path(path).name}: {exc}") from exc
    return graph_features(model.graph)


def graph_features(graph: Any) -> GraphFeatures:
    """Features of an ``onnx.GraphProto`` whose value_info carries inferred shapes."""
    shapes = _tensor_shapes(graph)
    weights = {init.name for init in graph.initializer}
    macs: Counter[str] = Counter()
    read: Counter[str] = Counter()
    written: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    kernels: Counter[str] = Counter()
    op_types: set[str] = set()
    attention: list[list[int]] = []
    softmax_elements = activation = largest = unknown = 0
    for node in graph.node:
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        op_types.add(op)
        if node.op_type in _FREE and op == node.op_type:
            continue
        ins = [shapes.get(name) for name in node.input if name]
        outs = [shapes.get(name) for name in node.output if name]
        if any(s is None for s in (*ins, *outs)):
            unknown += 1
        category = _category(node, ins, weights)
        counts[category] += 1
        read[category] += sum(_bytes(s) for s in ins if s is not None)
        out_bytes = [_bytes(s) for s in outs if s is not None]
        written[category] += sum(out_bytes)
        activation += sum(out_bytes)
        largest = max([largest, *out_bytes])
        macs[category] += _macs(node, category, ins, outs)
        if category in CONV_CATEGORIES and len(ins) > 1 and ins[1] is not None:
            kernels["x".join(str(d) for d in ins[1][0][2:])] += 1
        if category == "softmax" and outs and outs[0] is not None:
            softmax_elements += prod(outs[0][0])
        if category == "matmul_act" and ins[0] is not None and outs[0] is not None:
            attention.append([prod(outs[0][0][:-1]), ins[0][0][-1], outs[0][0][-1]])
    return GraphFeatures(
        macs={category: n for category, n in macs.items() if n},
        bytes_read=dict(read),
        bytes_written=dict(written),
        counts=dict(counts),
        op_types=tuple(sorted(op_types)),
        kernel_sizes=dict(kernels),
        params=sum(prod(init.dims) for init in graph.initializer),
        activation_bytes=activation,
        max_activation_bytes=largest,
        softmax_elements=softmax_elements,
        unknown_shape_nodes=unknown,
        attention_matmuls=attention,
    )


def node_macs(graph: Any) -> dict[str, tuple[str, int]]:
    """MACs of every convolution and matrix product node, by node name (op type beside):
    the per-node view of ``graph_features``, for reports that split MACs by how nodes ran."""
    shapes = _tensor_shapes(graph)
    weights = {init.name for init in graph.initializer}
    out: dict[str, tuple[str, int]] = {}
    for node in graph.node:
        ins = [shapes.get(name) for name in node.input if name]
        category = _category(node, ins, weights)
        if category in (*CONV_CATEGORIES, *MATMUL_CATEGORIES):
            outs = [shapes.get(name) for name in node.output if name]
            out[node.name] = (node.op_type, _macs(node, category, ins, outs))
    return out


Shape = tuple[tuple[int, ...], int]  # (dims, bytes per element)


def _tensor_shapes(graph: Any) -> dict[str, Shape]:
    """Static shapes of every tensor shape inference could resolve (symbolic dims: left out)."""
    from onnx import helper

    shapes: dict[str, Shape] = {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        tensor = info.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        if tensor.HasField("shape") and all(d >= 0 for d in dims):
            shapes[info.name] = (dims, _itemsize(helper, tensor.elem_type))
    for init in graph.initializer:
        shapes[init.name] = (tuple(init.dims), _itemsize(helper, init.data_type))
    return shapes


def _itemsize(helper: Any, elem_type: int) -> int:
    import numpy as np

    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize


def _bytes(shape: Shape) -> int:
    dims, itemsize = shape
    return prod(dims) * itemsize


def _category(node: Any, ins: list[Shape | None], weights: set[str]) -> str:
    if node.op_type in ("Conv", "ConvTranspose"):
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        channels = ins[0][0][1] if ins and ins[0] is not None and len(ins[0][0]) > 1 else None
        if group == 1:
            return "conv_dense"
        return "conv_dw" if group == channels else "conv_group"
    if node.op_type in ("MatMul", "Gemm"):
        has_weight = any(name in weights for name in node.input[:2])
        return "matmul_weight" if has_weight else "matmul_act"
    return _CATEGORY_OF.get(node.op_type, "other")


def _macs(node: Any, category: str, ins: list[Shape | None], outs: list[Shape | None]) -> int:
    """Multiply-accumulates of a convolution or matrix product; 0 for the rest."""
    if not outs or outs[0] is None:
        return 0
    out_elements = prod(outs[0][0])
    if category in CONV_CATEGORIES and len(ins) > 1 and ins[1] is not None:
        # weight [C_out, C_in / group, *kernel]: each output element sums C_in/group * kernel
        return out_elements * prod(ins[1][0][1:])
    if category in MATMUL_CATEGORIES and ins and ins[0] is not None:
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        dims = ins[0][0]
        inner = dims[-2] if (node.op_type == "Gemm" and trans_a) else dims[-1]
        return out_elements * inner
    return 0
