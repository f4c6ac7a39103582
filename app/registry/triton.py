"""A version as a Triton model repository (issue 21): the folder Triton Inference Server, or KServe's Triton
runtime, loads as it is, streamed as a tar.gz:

    <name>/config.pbtxt            the signature, the version's batching, the labels file's name
    <name>/labels.txt              metadata.labels, one a line (when the version has labels)
    <name>/<version>/model.onnx    the graph, byte for byte the registered one

Only the graph is handed over: what the family's serving.py does before and after it (decoding images,
normalising, top-k, non-maximum suppression, beam search) stays on the client; each family says what in
`Family.triton` (models/contract.py). A version of several graphs run by a loop in Python (translation,
captioning: an encoder, a decoder step and beam search between them) is not one Triton model: refused."""

from __future__ import annotations

import json
import os
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.errors import Unprocessable
from app.inference.batching_config import BatchConfig
from app.registry.downloads import CHUNK
from app.registry.store import MODEL_FILE

LABELS_FILE = "labels.txt"
_MTIME = 315532800  # 1980-01-01, as in the zips: the same version gives the same bytes
# KServe v2 / dlserve datatypes -> Triton's DataType enum (model_config.proto); BYTES is TYPE_STRING there
_TYPES = {"BYTES": "TYPE_STRING"}


def refusal(task: str, multi_file: bool, triton: str) -> str | None:
    """Why a version of this family cannot be exported, or None."""
    if multi_file:
        return (f"a {task} version is several ONNX graphs with a decoding loop in Python between them "
                f"({triton or 'not one graph'}); Triton has no model for that loop: download the version's "
                "files with GET .../artifact and serve the graphs with your own decoding instead")
    return None


def _batched(signature: dict[str, Any]) -> bool:
    """Every input and output has a first dimension of free size: Triton may batch it (max_batch_size > 0)."""
    tensors = signature.get("inputs", []) + signature.get("outputs", [])
    return bool(tensors) and all(t["shape"] and t["shape"][0] == -1 for t in tensors)


def _quoted(text: str) -> str:
    # protobuf text format takes UTF-8 as it is, and \" and \\ escaped as JSON writes them
    return json.dumps(text, ensure_ascii=False)


def _tensor(t: dict[str, Any], batched: bool, labels: bool) -> str:
    dims = t["shape"][1:] if batched else t["shape"]
    parts = [f"name: {_quoted(t['name'])}", f"data_type: {_TYPES.get(t['datatype'], 'TYPE_' + t['datatype'])}",
             f"dims: [ {', '.join(str(d) for d in dims) or 1} ]"]
    if not dims:  # Triton's dims may not be empty: one value a row is [1] there, reshaped to [] for the graph
        parts.append("reshape: { shape: [ ] }")
    if labels:
        parts.append(f"label_filename: {_quoted(LABELS_FILE)}")
    return "  {\n" + "".join(f"    {p}\n" for p in parts) + "  }"


def config_pbtxt(name: str, version: int, signature: dict[str, Any], batching: BatchConfig,
                 labels: bool) -> str:
    """Triton's model configuration (protobuf text format) for the version's graph."""
    inputs, outputs = signature.get("inputs", []), signature.get("outputs", [])
    if not inputs or not outputs:
        raise Unprocessable(f"version {version} of {name!r} has no recorded signature (inputs and outputs): "
                            "Triton's config.pbtxt cannot be written without it")
    batched = _batched(signature)
    lines = [f"name: {_quoted(name)}", 'platform: "onnxruntime_onnx"', 'backend: "onnxruntime"',
             f"version_policy: {{ specific: {{ versions: [ {version} ] }} }}",
             f"max_batch_size: {batching.max_batch if batched else 0}",
             "input [\n" + ",\n".join(_tensor(t, batched, False) for t in inputs) + "\n]",
             # labels name the classes of the first output's last dimension (Triton's classification extension)
             "output [\n" + ",\n".join(_tensor(t, batched, labels and i == 0) for i, t in enumerate(outputs)) + "\n]"]
    if batched:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {round(batching.max_delay_s * 1e6)} }}")
    return "\n".join(lines) + "\n"


def labels_text(metadata: dict[str, Any]) -> str | None:
    labels = metadata.get("labels")
    if isinstance(labels, list) and labels and all(isinstance(x, str) and "\n" not in x for x in labels):
        return "".join(f"{x}\n" for x in labels)
    return None


def _header(name: str, size: int = 0, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = size, _MTIME
    info.type, info.mode = (tarfile.DIRTYPE, 0o755) if directory else (tarfile.REGTYPE, 0o644)
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def _tar(name: str, version: int, folder: Path, config: str, labels: str | None) -> Iterator[bytes]:
    """The uncompressed tar stream, written by hand from TarInfo headers so that the graph goes out a chunk at
    a time (tarfile's writer copies a member whole before the caller sees a byte)."""
    yield _header(f"{name}/", directory=True)
    for member, text in (("config.pbtxt", config), (LABELS_FILE, labels)):
        if text is not None:
            data = text.encode()
            yield _header(f"{name}/{member}", len(data)) + data + _padding(len(data))
    yield _header(f"{name}/{version}/", directory=True)
    graph = folder / MODEL_FILE
    with open(graph, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        yield _header(f"{name}/{version}/{MODEL_FILE}", size)
        sent = 0
        while sent < size and (chunk := src.read(min(CHUNK, size - sent))):
            sent += len(chunk)
            yield chunk
    if sent != size:
        raise OSError(f"{graph.name} shrank while it was sent")
    yield _padding(size) + b"\0" * (2 * tarfile.BLOCKSIZE)  # two zero blocks end a tar


def repository_tar_gz(name: str, version: int, folder: Path, config: str, labels: str | None) -> Iterator[bytes]:
    """The repository as a gzipped tar, produced a megabyte of graph at a time (never whole in memory)."""
    gz = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    for piece in _tar(name, version, folder, config, labels):
        if out := gz.compress(piece):
            yield out
    yield gz.flush()
