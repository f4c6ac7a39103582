"""workers/int8.py's weights are right on every x86 CPU: without VNNI (AVX2, AVX-512F) ONNX Runtime adds
pairs of uint8 x int8 products into a saturating int16, so a matrix product of full-range activations and
full-range 8-bit weights comes out wrong there (a matrix factorisation lost 0.205 RMSE so); the 7-bit weights
the quantiser writes keep every sum in range, on this machine whichever CPU it has."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from app.registry.store import MODEL_FILE
from workers import int8


def _matmul_version(folder, weights: np.ndarray) -> None:
    folder.mkdir()
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", weights.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", weights.shape[1]])],
        [numpy_helper.from_array(weights, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / MODEL_FILE)


def test_an_int8_matmul_of_full_range_values_stays_near_its_float_result(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.choice([-1.0, 1.0], size=(16, 8)).astype(np.float32)  # every weight at the end of its range
    x = np.sign(w[:, :1].T).repeat(4, 0) * rng.uniform(0.9, 1.0, (4, 16)).astype(np.float32)
    x = np.concatenate([x, -x]).astype(np.float32)  # activations at both ends, aligned with the weights' signs
    _matmul_version(tmp_path / "fp32", w)
    for method in ("dynamic", "static"):
        int8.quantise(tmp_path / "fp32", tmp_path / method, method, [{"x": x}], multi_file=False)
        y = ort.InferenceSession(str(tmp_path / method / MODEL_FILE), providers=["CPUExecutionProvider"]).run(
            None, {"x": x})[0]
        assert np.abs(y - x @ w).max() < 0.2, (method, np.abs(y - x @ w).max())  # |x @ w| reaches 16
