"""The `csv` format of the regression family (numpy only: the API validates uploads with it)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from models.common.errors import DatasetError

FORMATS = {"csv": "CSV with a header x1,...,xn,y: numeric features, the target y last"}
ARCHIVE_FORMATS: frozenset[str] = frozenset()


def guess_format(filename: str) -> str | None:
    return "csv" if filename.lower().endswith(".csv") else None


def read(path: Path, max_bytes: int | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """-> (feature names, x [N, F] float32, y [N] float32), or DatasetError naming the line."""
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise DatasetError(f"the file is over the limit of {max_bytes} bytes")
    try:
        lines = path.read_text("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DatasetError(f"the file is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not lines:
        raise DatasetError("the file is empty; it needs a header line and rows", "line 1")
    header = [c.strip() for c in lines[0].split(",")]
    if len(header) < 2 or header[-1] != "y":
        raise DatasetError("the header must be x1,...,xn,y (features, then the target y)", "line 1")
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != len(header):
            raise DatasetError(f"{len(fields)} fields where the header has {len(header)}", f"line {n}")
        try:
            row = [float(f) for f in fields]
        except ValueError:
            raise DatasetError("a field is not a number", f"line {n}") from None
        if not all(math.isfinite(v) and abs(v) < 1e30 for v in row):
            raise DatasetError("a field is not a finite number", f"line {n}")
        rows.append(row)
    if len(rows) < 2:
        raise DatasetError("at least two rows are needed (one to train on, one to validate)")
    table = np.asarray(rows, np.float32)
    return header[:-1], table[:, :-1], table[:, -1]


def validate(path: Path, fmt: str, max_bytes: int | None = None) -> dict[str, Any]:
    if fmt not in FORMATS:
        raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    features, _, y = read(path, max_bytes)
    return {"rows": int(y.size), "features": features, "y_mean": float(y.mean()), "y_std": float(y.std())}
