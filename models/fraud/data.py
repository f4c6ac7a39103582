"""Fraud-scoring datasets (numpy only: the API validates uploads with this module).

Format `csv`: a header line, then one transaction per line. One column is the label (1 = fraud,
0 = legitimate; named by config `label_column`, else the first of LABEL_NAMES present); every other
column must be numeric (ids and times included: config `drop_columns` says which to leave out of the
features). Every problem is a DatasetError naming the line (and the column), so the uploader can find it.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.common.errors import TableError as DatasetError
from models.common.tables import check_file_size

FORMATS = {"csv": "CSV with a header, numeric feature columns and a 0/1 label column (Class, label, is_fraud...)"}
ARCHIVE_FORMATS: frozenset[str] = frozenset()
LABEL_NAMES = ("Class", "class", "label", "Label", "is_fraud", "fraud")


@dataclass
class Table:
    columns: list[str]  # every column but the label, in file order
    x: np.ndarray  # [N, len(columns)] float64
    y: np.ndarray  # [N] int64, 1 = fraud
    label: str


def guess_format(filename: str) -> str | None:
    return "csv" if filename.lower().endswith(".csv") else None


def find_label(header: list[str], wanted: str | None = None) -> str:
    if wanted is not None:
        if wanted not in header:
            raise DatasetError(f"no label column {wanted!r} in the header (columns: {', '.join(header)})", "line 1")
        return wanted
    found = next((n for n in LABEL_NAMES if n in header), None)
    if found is None:
        raise DatasetError(f"no label column: the header needs one of {', '.join(LABEL_NAMES)} "
                           f"(1 = fraud, 0 = legitimate); it has {', '.join(header)}", "line 1")
    return found


def read(path: Path, label_column: str | None = None, max_bytes: int | None = None) -> Table:
    path = Path(path)
    check_file_size(path, max_bytes, "the file is empty; it needs a header line and at least one row")
    with open(path, newline="", encoding="utf-8-sig", errors="strict") as f:
        try:
            rows = csv.reader(f)
            header = next(rows, None)
            if not header or all(not h.strip() for h in header):
                raise DatasetError("the header line is empty", "line 1")
            header = [h.strip() for h in header]
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                raise DatasetError(f"column name(s) {', '.join(dupes)} appear more than once in the header", "line 1")
            label = find_label(header, label_column)
            li = header.index(label)
            columns = [h for h in header if h != label]
            if not columns:
                raise DatasetError("there are no feature columns besides the label", "line 1")
            xs: list[list[float]] = []
            ys: list[int] = []
            for row in rows:
                line = rows.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    raise DatasetError(f"{len(row)} fields where the header has {len(header)}", f"line {line}")
                values = []
                for j, (name, text) in enumerate(zip(header, row, strict=False)):
                    try:
                        v = float(text)
                    except ValueError:
                        raise DatasetError(f"column {name!r}: {text.strip()[:40]!r} is not a number",
                                           f"line {line}") from None
                    if not math.isfinite(v):
                        raise DatasetError(f"column {name!r}: {text.strip()!r} is not a finite number", f"line {line}")
                    if j == li:
                        if v not in (0.0, 1.0):
                            raise DatasetError(f"label column {name!r}: {text.strip()!r} is neither 0 nor 1",
                                               f"line {line}")
                        ys.append(int(v))
                    else:
                        values.append(v)
                xs.append(values)
        except UnicodeDecodeError as e:
            raise DatasetError(f"the file is not UTF-8 text ({e.reason} at byte {e.start})") from None
        except csv.Error as e:
            raise DatasetError(f"not a readable CSV: {e}", f"line {rows.line_num}") from None
    if not xs:
        raise DatasetError("the file has a header but no rows", "line 2")
    return Table(columns, np.asarray(xs, np.float64), np.asarray(ys, np.int64), label)


def validate(path: Path, fmt: str, max_bytes: int | None = None) -> dict[str, Any]:
    """Reads every record; returns summary statistics or raises DatasetError at the first bad one."""
    if fmt != "csv":
        raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    t = read(path, None, max_bytes)
    frauds = int(t.y.sum())
    if frauds == 0 or frauds == len(t.y):
        raise DatasetError(f"label column {t.label!r} holds only {'1' if frauds else '0'}s; "
                           "training needs both frauds (1) and legitimate rows (0)")
    return {"rows": len(t.y), "frauds": frauds, "legitimate": len(t.y) - frauds, "label_column": t.label,
            "columns": t.columns}
