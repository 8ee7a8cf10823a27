"""Graph features of a tiny hand-built ONNX graph against MACs and bytes counted by hand."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporters.features import onnx_features

F32 = 4  # bytes per element


def _tiny_graph() -> onnx.ModelProto:
    """x[1,3,8,8] -> 3x3 conv (4 ch) -> ReLU -> 3x3 depthwise conv -> reshape [1,4,64] ->
    transpose [1,64,4] -> (a) matmul by a [4,5] weight, (b) matmul with the reshaped map
    [1,4,64] (an attention-like activation x activation product) -> softmax over [1,64,64]."""
    weights = [
        numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w_conv"),
        numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w_dw"),
        numpy_helper.from_array(np.array([1, 4, 64], np.int64), "shape"),
        numpy_helper.from_array(np.ones((4, 5), np.float32), "w_fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w_conv"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w_dw"], ["c2"], pads=[1, 1, 1, 1], group=4),
        helper.make_node("Reshape", ["c2", "shape"], ["tokens_cf"]),
        helper.make_node("Transpose", ["tokens_cf"], ["tokens"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["tokens", "w_fc"], ["fc"]),
        helper.make_node("MatMul", ["tokens", "tokens_cf"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["attn"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [
            helper.make_tensor_value_info("fc", TensorProto.FLOAT, [1, 64, 5]),
            helper.make_tensor_value_info("attn", TensorProto.FLOAT, [1, 64, 64]),
        ],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    path = tmp_path_factory.mktemp("features") / "tiny.onnx"
    onnx.save(_tiny_graph(), str(path))
    return onnx_features(path)


def test_macs_by_category_match_hand_count(features):
    assert features.macs == {
        "conv_dense": 4 * 8 * 8 * (3 * 3 * 3),  # output elements x (C_in x k x k) = 6912
        "conv_dw": 4 * 8 * 8 * (1 * 3 * 3),  # one input channel per output channel = 2304
        "matmul_weight": (64 * 5) * 4,  # [1,64,4] @ [4,5]: 320 outputs x K=4 = 1280
        "matmul_act": (64 * 64) * 4,  # [1,64,4] @ [1,4,64]: 4096 outputs x K=4 = 16384
    }
    assert features.total_macs == 26880


def test_bytes_read_and_written_match_hand_count(features):
    act = 4 * 8 * 8 * F32  # every [1,4,8,8] / [1,4,64] / [1,64,4] tensor: 1024 bytes
    assert features.bytes_read["conv_dense"] == 3 * 8 * 8 * F32 + 4 * 3 * 3 * 3 * F32  # 768+432
    assert features.bytes_written["conv_dense"] == act
    assert features.bytes_read["act_relu"] == act
    assert features.bytes_read["conv_dw"] == act + 4 * 9 * F32
    assert features.bytes_read["memory"] == (act + 3 * 8) + act  # reshape reads its int64 shape
    assert features.bytes_written["memory"] == 2 * act
    assert features.bytes_read["matmul_weight"] == act + 4 * 5 * F32
    assert features.bytes_written["matmul_act"] == 64 * 64 * F32
    assert features.bytes_written["softmax"] == 64 * 64 * F32
    written = 4 * act + act + 64 * 5 * F32 + 2 * 64 * 64 * F32  # conv, relu, dw, 2 memory
    assert features.activation_bytes == written
    assert features.max_activation_bytes == 64 * 64 * F32


def test_counts_kernels_attention_and_op_types(features):
    assert features.counts == {
        "conv_dense": 1,
        "act_relu": 1,
        "conv_dw": 1,
        "memory": 2,
        "matmul_weight": 1,
        "matmul_act": 1,
        "softmax": 1,
    }
    assert features.kernel_sizes == {"3x3": 2}
    assert features.softmax_elements == 64 * 64
    assert features.attention_matmuls == [[64, 4, 64]]
    assert features.op_types == ("Conv", "MatMul", "Relu", "Reshape", "Softmax", "Transpose")
    assert features.params == 108 + 36 + 3 + 20
    assert features.unknown_shape_nodes == 0
    vector = features.vector()
    assert vector["macs.total"] == 26880 and vector["count.nodes"] == 8
    assert vector["bytes.conv_dense"] == 1200 + 1024
    assert vector["macs.conv_group"] == 0.0  # every category is present, so vectors line up
