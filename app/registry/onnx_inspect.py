"""Checks an uploaded ONNX file and reads its signature (input/output names, V2 datatypes, shapes).

The API checks in a child process, not in itself: loading a model to check it takes about twice its
size (the protobuf, the checker's copy, an ONNX Runtime session), which the API would otherwise hold at
its peak and, glibc being what it is, keep much of afterwards; a parser crash or a model that loads for
ever costs the child, never the API (the child gets `DLSERVE_MODEL_CHECK_TIMEOUT_S`). The children are
forked by one helper process that has onnx and ONNX Runtime imported already (app/registry/checker.py),
so a check costs a fork (milliseconds), not a Python start. Workers check in their own process
(`inspect_here`): they serve no traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from google.protobuf.message import DecodeError

from app.errors import Unprocessable

# ONNX element type -> Open Inference Protocol (KServe V2) datatype
V2_DATATYPES = {
    onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.FLOAT16: "FP16", onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.BFLOAT16: "BF16", onnx.TensorProto.INT8: "INT8", onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.INT32: "INT32", onnx.TensorProto.INT64: "INT64", onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.UINT16: "UINT16", onnx.TensorProto.UINT32: "UINT32", onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.BOOL: "BOOL", onnx.TensorProto.STRING: "BYTES",
}


def inspect_model(path: Path, timeout_s: float = 120.0) -> dict[str, Any]:
    """The signature of a model that passes every check, from a child process; Unprocessable otherwise."""
    from app.registry import checker

    if path.stat().st_size == 0:
        raise Unprocessable("field 'file' is empty", field="file")
    answer = checker.check(path, timeout_s)
    if "error" in answer:
        raise Unprocessable(answer["error"], field="file")
    return answer["signature"]


def inspect_here(path: Path) -> dict[str, Any]:
    """Validates the file (checker, no external data, loadable by ONNX Runtime) and returns its signature.
    Each step reads the file on disk and lets go of what it loaded before the next starts."""
    if path.stat().st_size == 0:
        raise Unprocessable("field 'file' is empty", field="file")
    signature = _read_signature(path)
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as e:
        raise Unprocessable(f"field 'file': onnx.checker rejected the model: {_first_line(e)}", field="file") from e
    _check_runtime_loads(path)
    return signature


def _read_signature(path: Path) -> dict[str, Any]:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise Unprocessable(f"field 'file' is not an ONNX model: {e}", field="file") from e
    if not model.graph.node:
        raise Unprocessable("field 'file': the ONNX graph has no nodes", field="file")
    external = _external_tensors(model.graph)
    if external:
        raise Unprocessable(
            f"field 'file': tensors {external[:5]} keep their data outside the file (external data); "
            "save the model as one self-contained .onnx file", field="file")
    initializers = {t.name for t in model.graph.initializer}
    return {
        "inputs": [_tensor(v, "input") for v in model.graph.input if v.name not in initializers],
        "outputs": [_tensor(v, "output") for v in model.graph.output],
        "opset": {op.domain or "ai.onnx": op.version for op in model.opset_import},
        "ir_version": model.ir_version,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
    }


def _tensor(value: onnx.ValueInfoProto, kind: str) -> dict[str, Any]:
    t = value.type
    if not t.HasField("tensor_type"):
        raise Unprocessable(f"field 'file': {kind} '{value.name}' is not a tensor ({t.WhichOneof('value')}); "
                            "only tensor inputs and outputs can be served", field="file")
    dtype = V2_DATATYPES.get(t.tensor_type.elem_type)
    if dtype is None:
        raise Unprocessable(f"field 'file': {kind} '{value.name}' has an element type that cannot be served "
                            f"({onnx.TensorProto.DataType.Name(t.tensor_type.elem_type)})", field="file")
    dims = t.tensor_type.shape.dim if t.tensor_type.HasField("shape") else []
    return {
        "name": value.name,
        "datatype": dtype,
        "shape": [d.dim_value if d.HasField("dim_value") else -1 for d in dims],
        "dim_names": [d.dim_param or None for d in dims],
    }


def _external_tensors(graph: onnx.GraphProto) -> list[str]:
    found = [t.name for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t") and attr.t.data_location == onnx.TensorProto.EXTERNAL:
                found.append(attr.t.name or node.name)
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                found += _external_tensors(sub)
    return found


def _check_runtime_loads(path: Path) -> None:
    # A model the checker accepts can still use an operator or opset ONNX Runtime lacks; better to
    # refuse it at upload than to fail at the first predict.
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    try:
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception classes (Fail, InvalidGraph, NotImplemented...)
        raise Unprocessable(f"field 'file': ONNX Runtime cannot load the model: {_first_line(e)}",
                            field="file") from e


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:500] if text else type(e).__name__

