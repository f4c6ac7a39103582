"""Open Inference Protocol (KServe V2) tensors: JSON and the binary-data extension, both ways.

A request body is a JSON header, optionally followed by raw tensor bytes (its length given by the
Inference-Header-Content-Length header); an input whose parameters carry `binary_data_size` takes
its data from there, in input order. BYTES elements in binary form are 4-byte little-endian length
prefixes followed by the bytes.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from app.errors import Unprocessable
from app.inference.runtime import NUMPY_DTYPES
from app.json_input import json_object
from models.common.numbers import first_non_finite_index

DATATYPES = {np.dtype(v).str: k for k, v in NUMPY_DTYPES.items() if v is not np.object_}


def datatype_of(array: np.ndarray) -> str:
    if array.dtype == np.object_ or array.dtype.kind in "SU":
        return "BYTES"
    return DATATYPES[array.dtype.str]


def split_body(body: bytes, header_length: str | None) -> tuple[dict[str, Any], memoryview]:
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise Unprocessable("header Inference-Header-Content-Length must be an integer") from None
        if not 0 <= n <= len(body):
            raise Unprocessable(f"header Inference-Header-Content-Length is {n}, but the body has {len(body)} bytes")
        head, tail = body[:n], memoryview(body)[n:]
    else:
        head, tail = body, memoryview(b"")
    request = json_object(head, where="the request")
    if not isinstance(request.get("inputs"), list) or not request["inputs"]:
        raise Unprocessable('the request needs "inputs": a non-empty list of tensors')
    return request, tail


def decode_inputs(request: dict[str, Any], tail: memoryview,
                  signature: dict[str, Any]) -> tuple[dict[str, np.ndarray], int]:
    """-> feeds checked against the signature, and the batch size (rows) they share."""
    expected = {s["name"]: s for s in signature["inputs"]}
    feeds: dict[str, np.ndarray] = {}
    offset = 0
    for i, tensor in enumerate(request["inputs"]):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise Unprocessable(f"inputs[{i}] must be an object with name, shape, datatype and data")
        name = tensor["name"]
        spec = expected.get(name)
        if spec is None:
            raise Unprocessable(f"input '{name}' is not an input of this model; it takes {_describe(signature)}")
        if name in feeds:
            raise Unprocessable(f"input '{name}' is given twice")
        shape = _shape(tensor, name)
        datatype = tensor.get("datatype")
        if datatype != spec["datatype"]:
            raise Unprocessable(f"input '{name}' has datatype {datatype}, the model expects {spec['datatype']} "
                                f"(signature: {_describe(signature)})")
        _check_shape(name, shape, spec, signature)
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(tail):
                raise Unprocessable(f"input '{name}': binary_data_size {size} runs past the end of the body")
            feeds[name] = _from_binary(tail[offset:offset + size], datatype, shape, name)
            offset += size
        else:
            feeds[name] = _from_json(tensor.get("data"), datatype, shape, name)
        _check_finite(feeds[name], f"input '{name}'")
    missing = [n for n in expected if n not in feeds]
    if missing:
        raise Unprocessable(f"missing input(s) {missing}; the model takes {_describe(signature)}")
    rows = {a.shape[0] for a in feeds.values() if a.ndim}
    if len(rows) > 1:
        raise Unprocessable(f"inputs disagree on the batch size (first dimension): {sorted(rows)}")
    return feeds, (rows.pop() if rows else 1)


def _check_finite(array: np.ndarray, what: str) -> None:
    # A JSON number past FP32's range becomes infinity in the array (binary data may carry NaN and
    # infinities as they are); the model would answer NaN, which JSON can only write as null.
    if (j := first_non_finite_index(array)) is not None:
        raise Unprocessable(f"{what} holds a value that is NaN, infinite or beyond {datatype_of(array)}'s range "
                            f"(first at flat index {j}); every value must be a finite number")


def check_outputs_finite(outputs: dict[str, np.ndarray], model: str) -> None:
    """A non-finite output is never sent as a success: 422 naming the output tensor."""
    for name, array in outputs.items():
        if (j := first_non_finite_index(array)) is not None:
            raise Unprocessable(f"output '{name}' of {model} is not finite (NaN or infinity, first at flat index "
                                f"{j}) for these inputs, so there is no answer to send")


def _shape(tensor: dict[str, Any], name: str) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise Unprocessable(f"input '{name}': shape must be a list of non-negative integers")
    return shape


def _check_shape(name: str, shape: list[int], spec: dict[str, Any], signature: dict[str, Any]) -> None:
    want = spec["shape"]
    if len(shape) != len(want) or any(w >= 0 and s != w for s, w in zip(shape, want, strict=True)):
        raise Unprocessable(f"input '{name}' has shape {shape}, the model expects {want} (-1: any size); "
                            f"signature: {_describe(signature)}")


def _from_json(data: Any, datatype: str, shape: list[int], name: str) -> np.ndarray:
    if data is None:
        raise Unprocessable(f"input '{name}' has neither data nor parameters.binary_data_size")
    try:
        if datatype == "BYTES":
            flat = np.asarray(data, dtype=object).reshape(-1)
            array = np.array([_text(v if isinstance(v, str) else bytes(v), name) for v in flat], dtype=object)
        else:
            with np.errstate(over="ignore", invalid="ignore"):  # overflow to infinity is refused below, by name
                array = np.asarray(data, dtype=NUMPY_DTYPES[datatype])
    except (ValueError, TypeError, OverflowError) as e:
        raise Unprocessable(f"input '{name}': data is not a list of {datatype} values ({e})") from None
    if array.size != int(np.prod(shape)):
        raise Unprocessable(f"input '{name}' has {array.size} values, its shape {shape} needs {int(np.prod(shape))}")
    return array.reshape(shape)


def _from_binary(raw: memoryview, datatype: str, shape: list[int], name: str) -> np.ndarray:
    count = int(np.prod(shape))
    if datatype == "BYTES":
        items, pos = [], 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise Unprocessable(f"input '{name}': truncated BYTES element length")
            (n,) = struct.unpack_from("<I", raw, pos)
            items.append(_text(bytes(raw[pos + 4:pos + 4 + n]), name))
            pos += 4 + n
        if pos != len(raw) or len(items) != count:
            raise Unprocessable(f"input '{name}': {len(items)} BYTES elements, its shape {shape} needs {count}")
        return np.array(items, dtype=object).reshape(shape)
    dtype = np.dtype(NUMPY_DTYPES[datatype])
    if len(raw) != count * dtype.itemsize:
        raise Unprocessable(f"input '{name}': {len(raw)} bytes of binary data, shape {shape} of {datatype} "
                            f"needs {count * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _text(value: str | bytes, name: str) -> str:
    # ONNX string tensors take Python str; ONNX Runtime would turn bytes into their repr ("b'...'").
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise Unprocessable(f"input '{name}': BYTES elements must be UTF-8 text for an ONNX string tensor") from None


def encode_outputs(outputs: dict[str, np.ndarray], request: dict[str, Any]) -> tuple[list[dict[str, Any]], list[bytes]]:
    """-> output tensors for the JSON header, and the binary blobs that follow it (in order)."""
    params = request.get("parameters") or {}
    binary_default = bool(params.get("binary_data_output", False))
    wanted = request.get("outputs")
    if wanted is None:
        chosen = [(name, binary_default) for name in outputs]
    else:
        if not isinstance(wanted, list):
            raise Unprocessable('"outputs" must be a list of {"name": ...} objects')
        chosen = []
        for o in wanted:
            name = o.get("name") if isinstance(o, dict) else None
            if name not in outputs:
                raise Unprocessable(f"requested output {name!r} is not an output of this model; it has {list(outputs)}")
            chosen.append((name, bool((o.get("parameters") or {}).get("binary_data", binary_default))))
    tensors, blobs = [], []
    for name, binary in chosen:
        array = outputs[name]
        entry = {"name": name, "datatype": datatype_of(array), "shape": list(array.shape)}
        if binary:
            blob = _to_binary(array)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _to_json(array)
        tensors.append(entry)
    return tensors, blobs


def _to_binary(array: np.ndarray) -> bytes:
    if array.dtype == np.object_ or array.dtype.kind in "SU":
        parts = []
        for v in array.reshape(-1):
            b = v.encode() if isinstance(v, str) else bytes(v)
            parts.append(struct.pack("<I", len(b)) + b)
        return b"".join(parts)
    return np.ascontiguousarray(array).tobytes()


def _to_json(array: np.ndarray) -> Any:
    if array.dtype == np.object_ or array.dtype.kind in "SU":
        return [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
    return np.ascontiguousarray(array).reshape(-1)  # orjson serialises numpy arrays natively


def _describe(signature: dict[str, Any]) -> str:
    return ", ".join(f"{s['name']} {s['datatype']} {s['shape']}" for s in signature["inputs"])
