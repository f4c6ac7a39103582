"""Reading an uploaded .npz without trusting it.

np.load inflates each array whole, so a 1 MiB .npz of zeros becomes a gigabyte in memory. Here the sizes
come first, from the zip directory and from each member's .npy header (shape and dtype), and are held
to the byte budget before a byte is inflated; an array is then read from a stream that the zip module
stops at the size the directory declared, so a member that lies about its size cannot exceed it.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from models.common.errors import DatasetError, DatasetTooLarge

NPY_FORMAT = np.lib.format


def read_npz(path: Path, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Array name -> array. DatasetTooLarge when the arrays declare more than `max_bytes` in all;
    DatasetError naming the array for anything else (not a .npy, object arrays, a header that does not
    match the member's size, a damaged member)."""
    try:
        with zipfile.ZipFile(path) as z:
            members = [i for i in z.infolist() if not i.is_dir()]
            total = sum(i.file_size for i in members)
            if max_bytes is not None and total > max_bytes:
                raise DatasetTooLarge(f"the arrays unpack to {total} bytes, over the budget of {max_bytes} bytes")
            headers = {i.filename: _header(z, i) for i in members}
            declared = sum(_nbytes(shape, dtype) for shape, dtype in headers.values())
            if max_bytes is not None and declared > max_bytes:
                raise DatasetTooLarge(f"the arrays declare {declared} bytes, over the budget of {max_bytes} bytes")
            arrays = {}
            for info in members:
                key = _key(info.filename)
                with z.open(info) as f:
                    arrays[key] = NPY_FORMAT.read_array(f, allow_pickle=False)
            return arrays
    except DatasetError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, zlib.error,
            ValueError) as e:
        raise DatasetError(f"the file is not a readable numpy .npz archive ({e})") from None


def _key(name: str) -> str:
    return name[:-4] if name.endswith(".npy") else name


def _header(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    key = _key(info.filename)
    if info.flag_bits & 0x1:
        raise DatasetError("is encrypted", key)
    with z.open(info) as f:
        try:
            version = NPY_FORMAT.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = NPY_FORMAT.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = NPY_FORMAT.read_array_header_2_0(f)
            else:
                raise DatasetError(f".npy format version {version} is not supported; save with numpy.savez", key)
        except (ValueError, EOFError) as e:
            raise DatasetError(f"is not a .npy array ({e})", key) from None
        header_len = f.tell()
    if dtype.hasobject:
        raise DatasetError("holds Python objects, which cannot be read without pickle; store plain arrays", key)
    nbytes = _nbytes(shape, dtype)
    if nbytes > info.file_size - header_len:
        raise DatasetError(f"its header declares shape {shape} of {dtype} ({nbytes} bytes), but the member holds "
                           f"{max(info.file_size - header_len, 0)} bytes of data", key)
    return shape, dtype


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize  # Python ints: a hostile shape cannot overflow
