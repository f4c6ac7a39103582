"""A hostile-input corpus, generated: compression bombs in every archive format the API reads, built in
a few chunks of memory however much they unpack to, and other payloads a fuzzer would not think of."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib

import numpy as np

CHUNK = bytes(1024 * 1024)


def _zeros(out, n: int) -> None:
    while n > 0:
        out.write(CHUNK[:min(n, len(CHUNK))])
        n -= len(CHUNK)


def zip_bomb(unpacked: int, name: str = "cats/a.png") -> bytes:
    buf = io.BytesIO()
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z, \
            z.open(info, "w", force_zip64=True) as f:
        _zeros(f, unpacked)
    return buf.getvalue()


def tar_gz_bomb(unpacked: int, name: str = "cats/a.png") -> bytes:
    buf = io.BytesIO()
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    info = tarfile.TarInfo(name)
    info.size = unpacked
    buf.write(gz.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
    left = unpacked + (-unpacked % 512) + 1024  # the data, its padding, the two end blocks
    while left > 0:
        n = min(left, len(CHUNK))
        buf.write(gz.compress(CHUNK[:n]))
        left -= n
    buf.write(gz.flush())
    return buf.getvalue()


def gz_bomb(unpacked: int) -> bytes:
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts, left = [], unpacked
    while left > 0:
        n = min(left, len(CHUNK))
        parts.append(gz.compress(CHUNK[:n]))
        left -= n
    parts.append(gz.flush())
    return b"".join(parts)


def npz_bomb(images: int, size: int = 256, labels: int = 2) -> bytes:
    """x: uint8 zeros [images, size, size] (deflated: about a thousandth of that), y: labels 0..labels-1."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            f.write(_npy_header((images, size, size), np.uint8))
            _zeros(f, images * size * size)
        y = io.BytesIO()
        np.save(y, np.arange(images) % labels)
        z.writestr("y.npy", y.getvalue())
    return buf.getvalue()


def npz_lying_header(shape: tuple[int, ...]) -> bytes:
    """An npz whose x.npy header declares `shape` over a few bytes of data."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", _npy_header(shape, np.uint8) + bytes(64))
        y = io.BytesIO()
        np.save(y, np.arange(4) % 2)
        z.writestr("y.npy", y.getvalue())
    return buf.getvalue()


def _npy_header(shape: tuple[int, ...], dtype) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                               "shape": shape})
    return out.getvalue()  # magic included


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height pixels, with one tiny compressed row of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


def nested_json(depth: int) -> bytes:
    return b'{"inputs": ' + b"[" * depth + b"]" * depth + b"}"
