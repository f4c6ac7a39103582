"""Uploaded tables (fraud's CSV, recommendation's ratings): what is checked before one is read (stdlib only)."""

from __future__ import annotations

from pathlib import Path

from models.common.errors import TableError


def check_file_size(path: Path, max_bytes: int | None, empty: str) -> int:
    """The file's size; TableError `empty` (at line 1) for an empty file, or for one over `max_bytes`."""
    size = Path(path).stat().st_size
    if size == 0:
        raise TableError(empty, "line 1")
    if max_bytes is not None and size > max_bytes:
        raise TableError(f"the file is {size} bytes, over the limit of {max_bytes}")
    return size
