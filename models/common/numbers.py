"""Numbers a client sends, checked against what the model's tensors can hold. JSON numbers are float64;
most models take float32, where 3.5e38 becomes infinity and the answer NaN: a silent wrong answer,
unless each number is checked on the way in. Families call these for per-field messages; the API runs
`first_unrepresentable` over an input whose float feed came out non-finite, to name the field."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.common.errors import InputError

FLOAT32_MAX = float(np.finfo(np.float32).max)  # about 3.4028e38


def representable(value: float, dtype: Any = np.float32) -> bool:
    """True when `value` is finite and stays finite in `dtype`."""
    return math.isfinite(value) and abs(value) <= float(np.finfo(dtype).max)


def finite_float32(value: Any, field: str) -> float:
    """A JSON number that float32 holds, or InputError naming `field` (booleans, strings, NaN, infinities
    and magnitudes past 3.4e38 are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(field, f"must be a number (got {value!r:.40})")
    try:
        number = float(value)
    except OverflowError:  # an int of hundreds of digits
        raise InputError(field, f"is beyond float32's range (±{FLOAT32_MAX:.4g})") from None
    if not representable(number):
        raise InputError(field, f"must be a finite number within float32's range (±{FLOAT32_MAX:.4g}); got {value:.6g}"
                         if math.isfinite(number) else f"must be a finite number (got {value})")
    return number


def first_non_finite_index(array: np.ndarray) -> int | None:
    """The flat index of the first NaN or infinity in a float array, or None when there is none."""
    if array.dtype.kind not in "fc" or array.size == 0:
        return None
    ok = np.isfinite(array).reshape(-1)
    return None if ok.all() else int(np.argmin(ok))


def first_unrepresentable(value: Any, where: str, dtype: Any = np.float32) -> str | None:
    """The path (e.g. "inputs[0].features.V3") of the first number in a JSON value that `dtype` cannot
    hold, or None. Strings are not looked into."""
    stack = [(value, where)]
    while stack:
        v, path = stack.pop()
        if isinstance(v, bool) or v is None or isinstance(v, str):
            continue
        if isinstance(v, (int, float)):
            try:
                if not representable(float(v), dtype):
                    return path
            except OverflowError:
                return path
        elif isinstance(v, dict):
            stack.extend((x, f"{path}.{k}") for k, x in reversed(list(v.items())))
        elif isinstance(v, (list, tuple)):
            stack.extend((x, f"{path}[{i}]") for i, x in reversed(list(enumerate(v))))
    return None


def first_non_finite(value: Any, where: str) -> str | None:
    """The path of the first NaN or infinity in an answer about to be sent (floats, numpy scalars and
    arrays, in dicts and lists), or None."""
    stack = [(value, where)]
    while stack:
        v, path = stack.pop()
        if isinstance(v, (float, np.floating)):
            if not math.isfinite(v):
                return path
        elif isinstance(v, np.ndarray):
            if v.dtype.kind in "fc" and v.size and not np.isfinite(v).all():
                return f"{path}[{int(np.argmin(np.isfinite(v).reshape(-1)))}]"
        elif isinstance(v, dict):
            stack.extend((x, f"{path}.{k}") for k, x in reversed(list(v.items())))
        elif isinstance(v, (list, tuple)):
            stack.extend((x, f"{path}[{i}]") for i, x in reversed(list(enumerate(v))))
    return None
