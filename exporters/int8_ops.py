"""What of a quantized ONNX graph actually runs in int8 on onnxruntime's CPU provider.

A QDQ graph only marks where quantization may happen; the runtime decides, during its graph
optimisation, which DequantizeLinear → op → QuantizeLinear groups become integer kernels
(QLinearConv, QGemm, ...). Everything it leaves as a float op between dequantize and quantize
nodes is a *float island*. So the session's optimised graph is saved
(``SessionOptions.optimized_model_filepath``) and read back, and the MACs of every convolution or
matrix product (counted on the QDQ graph, whose standard ops shape inference knows; the
optimiser keeps node names) are split by the kernel that runs them.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from exporters.errors import ExportError
from exporters.features import node_macs

# integer kernels of onnxruntime's CPU provider (ai.onnx and com.microsoft domains), beside the
# QLinear* family (QLinearConv, QLinearMatMul, QLinearAdd, QLinearMul, QLinearSigmoid, ...)
INT8_OPS = frozenset(
    {
        "ConvInteger",
        "MatMulInteger",
        "MatMulIntegerToFloat",
        "DynamicQuantizeMatMul",
        "QGemm",
        "QAttention",
        "NhwcQLinearConv",
    }
)
# data movement and (de)quantization: neither int8 compute nor a float island
_PLUMBING = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "Reshape",
        "Transpose",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Identity",
        "Shape",
        "Constant",
        "Concat",
        "Split",
        "Slice",
        "Gather",
        "Expand",
    }
)


def is_int8(op_type: str | None) -> bool:
    return op_type is not None and (op_type in INT8_OPS or op_type.startswith("QLinear"))


def optimized_graph(path: Path) -> Any:
    """The graph onnxruntime's CPU provider runs (extended optimisation: the QDQ fusions;
    the layout transforms of the top level only reorder memory and are not saved)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "optimized.onnx"
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(saved)
        try:
            ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ExportError("onnx", f"onnxruntime cannot load the int8 graph: {exc}") from exc
        return onnx.load(str(saved)).graph


def qdq_macs(path: Path) -> dict[str, tuple[str, int]]:
    """MACs of each convolution / matrix product of the QDQ graph at ``path``, by node name."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)), data_prop=True)
    return node_macs(model.graph)


def int8_coverage(qdq_path: Path) -> dict[str, Any]:
    """``int8_mac_fraction``: MACs run by integer kernels over all MACs; ``float_islands``:
    the ops run in float after optimisation, by op type with their MACs, largest first."""
    macs = qdq_macs(qdq_path)
    ran = {node.name: node.op_type for node in optimized_graph(qdq_path).node if node.name}
    int8 = 0
    islands: dict[str, Counter[str]] = {}
    for name, (op, count) in macs.items():
        kernel = ran.get(name)
        if is_int8(kernel):
            int8 += count
            continue
        island = islands.setdefault(kernel or f"{op} (fused away)", Counter())
        island["nodes"] += 1
        island["macs"] += count
    for name, kernel in ran.items():
        if name not in macs and not is_int8(kernel) and kernel not in _PLUMBING:
            island = islands.setdefault(kernel, Counter())
            island["nodes"] += 1
    total = sum(count for _, count in macs.values())
    listed = [{"op": op, "nodes": c["nodes"], "macs": c["macs"]} for op, c in islands.items()]
    return {
        "int8_mac_fraction": round(int8 / total, 4) if total else 0.0,
        "macs": total,
        "int8_macs": int8,
        "float_islands": sorted(listed, key=lambda i: (-i["macs"], -i["nodes"], i["op"])),
        "kernels": dict(Counter(ran.values()).most_common()),
        "analysed_on": "onnxruntime CPUExecutionProvider, optimised graph (extended level)",
    }
