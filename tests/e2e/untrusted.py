"""Uploads that would wedge or sink a service measuring them in its own process; each one passes
``onnx.checker``, so only the work budget or the bounded measuring child stops it."""

from __future__ import annotations

import fcntl
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=OPSET)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def endless(path: Path) -> Path:
    """A Loop with trip count 2**62: its run never ends."""
    value = [1, 8]
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Relu", ["v_in"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, value),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, value),
        ],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)],
        "endless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, value)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, value)],
        [
            numpy_helper.from_array(np.array(2**62, dtype=np.int64), "trips"),
            numpy_helper.from_array(np.array(True), "cond"),
        ],
    )
    return _save(graph, path)


def hungry(path: Path, gib: int = 4) -> Path:
    """Allocates ``gib`` GiB while it runs: the size is computed from the input's shape at run
    time, so neither the declared input nor shape inference shows it."""
    graph = helper.make_graph(
        [
            helper.make_node("Shape", ["x"], ["shape"]),
            helper.make_node("Mul", ["shape", "scale"], ["big"]),
            helper.make_node(
                "ConstantOfShape",
                ["big"],
                ["y"],
                value=numpy_helper.from_array(np.array([1.0], dtype=np.float32)),
            ),
        ],
        "hungry",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "n"])],
        [numpy_helper.from_array(np.array([1, gib * 2**28], dtype=np.int64), "scale")],
    )
    return _save(graph, path)


def huge_input(path: Path) -> Path:
    """Declares a 2 GiB input (float [1, 512, 1024, 1024])."""
    shape = [1, 512, 1024, 1024]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "huge_input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    return _save(graph, path)


def lock_is_free(path: Path) -> bool:
    """Nobody holds the host lock (an exclusive try-lock succeeds)."""
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True
