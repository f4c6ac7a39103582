"""ONNX Runtime sessions built from settings, warm-up inputs built from a signature, memory readings."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from app.settings import KNOWN_PROVIDERS, Settings

log = logging.getLogger("dlserve.inference")

LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
NUMPY_DTYPES = {
    "FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "INT8": np.int8, "INT16": np.int16,
    "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "BOOL": np.bool_, "BYTES": np.object_,
}


class ProviderUnavailable(RuntimeError):
    pass


def check_providers(settings: Settings) -> list[str]:
    """The ORT provider names to use, in order. Asking for one this build lacks is an error, never a
    silent fall back to the CPU: a GPU deployment that quietly runs on the CPU is a worse surprise."""
    available = ort.get_available_providers()
    wanted = [KNOWN_PROVIDERS[p] for p in settings.providers]
    missing = [p for p, name in zip(settings.providers, wanted, strict=True) if name not in available]
    if missing:
        raise ProviderUnavailable(
            f"DLSERVE_PROVIDERS asks for {', '.join(missing)}, but this onnxruntime build offers only "
            f"{', '.join(available)}; install onnxruntime-gpu for cuda (the gpu image), or set DLSERVE_PROVIDERS=cpu")
    return wanted


def session_options(settings: Settings) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = LEVELS[settings.graph_optimization]
    opts.intra_op_num_threads = settings.intra_op_threads
    opts.inter_op_num_threads = settings.inter_op_threads
    opts.log_severity_level = 3
    if not settings.ort_spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


def provider_options(providers: list[str], cuda_device: int = 0) -> list[tuple[str, dict[str, Any]] | str]:
    out: list[tuple[str, dict[str, Any]] | str] = []
    for p in providers:
        if p == "CUDAExecutionProvider":
            # Grow the arena in requested sizes rather than powers of two: several models share a GPU.
            out.append((p, {"device_id": cuda_device,
                            "arena_extend_strategy": "kSameAsRequested",
                            "cudnn_conv_algo_search": "HEURISTIC"}))
        else:
            out.append(p)
    return out


def create_session(path: Path, settings: Settings, providers: list[str]) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), session_options(settings),
                                providers=provider_options(providers, settings.cuda_device))


def warmup_feeds(signature: dict[str, Any], batch: int) -> dict[str, np.ndarray]:
    """Zeros shaped by the signature: dynamic batch dims take `batch`, other dynamic dims 8."""
    feeds = {}
    for spec in signature["inputs"]:
        shape = [(batch if i == 0 else 8) if d < 0 else d for i, d in enumerate(spec["shape"])]
        dtype = NUMPY_DTYPES[spec["datatype"]]
        feeds[spec["name"]] = np.full(shape, "", dtype=object) if dtype is np.object_ else np.zeros(shape, dtype)
    return feeds


def batchable(signature: dict[str, Any]) -> bool:
    """True when every input has a dynamic first dimension, so requests can be stacked along it."""
    return all(spec["shape"] and spec["shape"][0] < 0 for spec in signature["inputs"])


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0
