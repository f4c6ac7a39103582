"""Unpacking uploaded archives (zip, tar, tar.gz/bz2/xz) without trusting them.

Nothing lands outside the destination: absolute names, '..' and drive letters are refused, links and
devices too, and files are created with O_EXCL|O_NOFOLLOW. Sizes are counted on the bytes actually
written, not on what the headers claim, so a zip bomb stops at the limit instead of filling the disk.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from app.errors import PayloadTooLarge, Unprocessable

CHUNK = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_files: int
    max_ratio: float


class _Budget:
    def __init__(self, limits: Limits, compressed_size: int):
        self.limits = limits
        self.byte_limit = min(limits.max_bytes, int(max(compressed_size, 1) * limits.max_ratio))
        self.files = 0
        self.bytes = 0

    def new_file(self, entry: str) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise PayloadTooLarge(f"the archive holds more than {self.limits.max_files} files", entry=entry,
                                  limit_files=self.limits.max_files)

    def add(self, n: int, entry: str) -> None:
        self.bytes += n
        if self.bytes > self.byte_limit:
            if self.byte_limit < self.limits.max_bytes:
                raise PayloadTooLarge(f"the archive unpacks to more than {self.limits.max_ratio:g} times its size "
                                      "(a compression bomb?)", entry=entry, limit_ratio=self.limits.max_ratio)
            raise PayloadTooLarge(f"the archive unpacks to more than {self.limits.max_bytes} bytes", entry=entry,
                                  limit_bytes=self.limits.max_bytes)


def extract(archive: Path, dest: Path, limits: Limits) -> int:
    """Unpacks `archive` into the new folder `dest`; returns the number of files."""
    dest.mkdir(parents=True)
    budget = _Budget(limits, archive.stat().st_size)
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, dest.resolve(), budget)
    elif _is_tar(archive):
        _extract_tar(archive, dest.resolve(), budget)
    else:
        raise Unprocessable("field 'file' is not a zip or tar archive (.zip, .tar, .tar.gz)", field="file")
    return budget.files


def is_archive(path: Path) -> bool:
    return zipfile.is_zipfile(path) or _is_tar(path)


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, tarfile.TarError):
        return False


def _refuse(entry: str, why: str) -> Unprocessable:
    return Unprocessable(f"field 'file': entry '{entry}' {why}", field="file", entry=entry)


def _target(dest: Path, name: str) -> Path | None:
    """The path an entry may be written to, or None for entries that name no file ('./')."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or _DRIVE.match(clean):
        raise _refuse(name, "has an absolute path; archive entries must be relative")
    parts = [p for p in PurePosixPath(clean).parts if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(name, "climbs out of the archive with '..'")
    if not parts:
        return None
    target = dest.joinpath(*parts)
    if not target.resolve().is_relative_to(dest):  # belt and braces: nothing above may let it escape
        raise _refuse(name, "points outside the archive")
    return target


def _write(target: Path, src: IO[bytes], entry: str, budget: _Budget) -> None:
    budget.new_file(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError as e:
        raise _refuse(entry, "appears twice in the archive") from e
    except (IsADirectoryError, NotADirectoryError) as e:
        raise _refuse(entry, "clashes with a folder of the same name") from e
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(CHUNK):
            budget.add(len(chunk), entry)
            out.write(chunk)


def _extract_zip(archive: Path, dest: Path, budget: _Budget) -> None:
    try:
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise _refuse(info.filename, "is a symbolic link; links are not allowed")
                if info.flag_bits & 0x1:
                    raise _refuse(info.filename, "is encrypted")
                target = _target(dest, info.filename)
                if target is None or info.is_dir():
                    continue
                with z.open(info) as src:
                    _write(target, src, info.filename, budget)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, zlib.error) as e:
        raise Unprocessable(f"field 'file': the zip archive cannot be read ({e})", field="file") from e


def _extract_tar(archive: Path, dest: Path, budget: _Budget) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if member.issym() or member.islnk():
                    raise _refuse(member.name, "is a link; links are not allowed")
                if not (member.isreg() or member.isdir()):
                    raise _refuse(member.name, "is not a regular file or folder (a device or pipe)")
                target = _target(dest, member.name)
                if target is None or member.isdir():
                    continue
                src = tar.extractfile(member)
                with src:
                    _write(target, src, member.name, budget)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise Unprocessable(f"field 'file': the tar archive cannot be read ({e})", field="file") from e
