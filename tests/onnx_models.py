"""Tiny real ONNX models built with onnx.helper, for tests (no torch needed)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from app.examples import (
    png,  # noqa: F401  (one PNG encoder for the tests and the examples)
    tiny_classifier,  # noqa: F401  (the tests' tiny model is the one users get)
)


def to_bytes(model: onnx.ModelProto) -> bytes:
    buf = io.BytesIO()
    onnx.save(model, buf)
    return buf.getvalue()


def with_external_data(model: onnx.ModelProto, folder: Path) -> bytes:
    """The model saved with its weights in a side file; returns the .onnx bytes (which point at it)."""
    from onnx.external_data_helper import convert_model_to_external_data

    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    path = folder / "external.onnx"
    onnx.save(model, str(path))
    return path.read_bytes()


def unknown_operator() -> bytes:
    """Passes onnx.checker (custom domain) but ONNX Runtime has no kernel for it."""
    node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph(
        [node], "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    return to_bytes(model)


def echo_all_types() -> bytes:
    """One Identity per V2 datatype the protocol tests round-trip: f32 [-1,2], i64, i32, bool, f16, bytes [-1]."""
    spec = [("f32", TensorProto.FLOAT, ["batch", 2]), ("i64", TensorProto.INT64, ["batch"]),
            ("i32", TensorProto.INT32, ["batch"]), ("b", TensorProto.BOOL, ["batch"]),
            ("f16", TensorProto.FLOAT16, ["batch"]), ("s", TensorProto.STRING, ["batch"])]
    nodes = [helper.make_node("Identity", [n], [f"{n}_out"]) for n, _, _ in spec]
    graph = helper.make_graph(
        nodes, "echo", [helper.make_tensor_value_info(n, t, s) for n, t, s in spec],
        [helper.make_tensor_value_info(f"{n}_out", t, s) for n, t, s in spec],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return to_bytes(model)


def doubler(width: int = 4) -> bytes:
    """x [batch, width] float -> y = 2x: each caller can check it got its own rows back."""
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])], "doubler",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])], [two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return to_bytes(model)


def big_linear(mib: int, width: int = 256) -> onnx.ModelProto:
    """features [batch, F] -> scores [batch, width] by one MatMul whose weights take `mib` MiB."""
    rows = mib * 1024 * 1024 // 4 // width
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((rows, width)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "W"], ["scores"])], "big",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", rows])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", width])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model
