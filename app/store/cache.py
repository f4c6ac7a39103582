"""The local cache of a host in front of an object store (DLSERVE_HOME/cache/artifacts): unpacked datasets on the
workers, model versions on the API. It is bounded (DLSERVE_CACHE_MAX_BYTES): entries are evicted least recently
used first, except those pinned by a live process (a worker training on the dataset).

An entry is a folder (`datasets/<sha256>`, `models/<name>/<version>`, `runs/<id>`) holding a `.used` file: its
size in bytes, and by its modification time when it was last used. The folder appears by one rename, whole. A
pin is a file `.pin-<pid>-<n>` in the folder; a pin whose process is gone pins nothing (a killed worker leaves
no entry pinned for ever)."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from itertools import count
from pathlib import Path

from app.errors import ServiceUnavailable
from app.processes import alive

log = logging.getLogger("dlserve.store")
USED = ".used"
ENTRY_GLOBS = ("datasets/*", "models/*/*", "runs/*")
_serial = count()


class CacheFull(ServiceUnavailable):
    """A 503 for the API (others' entries are in use: later it may fit), a failed job for a worker."""


def folder_size(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass
    return total


class Cache:
    def __init__(self, root: Path, max_bytes: int):
        self.root, self.max_bytes = Path(root), max_bytes
        self._lock = threading.Lock()

    def has(self, entry: Path) -> bool:
        return (entry / USED).is_file()

    def touch(self, entry: Path) -> None:
        try:
            os.utime(entry / USED)
        except FileNotFoundError:
            pass

    def pin(self, entry: Path) -> Path:
        pin = entry / f".pin-{os.getpid()}-{next(_serial)}"
        pin.touch()
        return pin

    def pinned(self, entry: Path) -> bool:
        for p in entry.glob(".pin-*"):
            try:
                if alive(int(p.name.split("-")[1])):
                    return True
            except (ValueError, IndexError):
                continue
            p.unlink(missing_ok=True)  # its process is gone
        return False

    def admit(self, build: Path, entry: Path) -> Path:
        """Moves a folder built elsewhere on this file system into place as `entry` (unless another process
        placed it first) and makes room for it; CacheFull when it cannot fit beside the pinned entries."""
        size = folder_size(build)
        (build / USED).write_text(str(size))
        entry.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self.has(entry):
                shutil.rmtree(build, ignore_errors=True)
                self.touch(entry)
            else:
                if entry.exists():  # a folder without its marker: left by a crash mid-eviction
                    shutil.rmtree(entry, ignore_errors=True)
                os.replace(build, entry)
            self._make_room(keep=entry)
        return entry

    def account(self, file: Path) -> None:
        """Counts a file written straight into an entry's folder (a run's checkpoint), making room for it."""
        parts = file.relative_to(self.root).parts
        depth = 3 if parts[0] == "models" else 2  # ENTRY_GLOBS
        if len(parts) <= depth:
            return
        entry = self.root.joinpath(*parts[:depth])
        with self._lock:
            (entry / USED).write_text(str(folder_size(entry)))
            self._make_room(keep=entry)

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last used, size, folder) of every entry, least recently used first."""
        found = []
        for pattern in ENTRY_GLOBS:
            for used in self.root.glob(f"{pattern}/{USED}"):
                try:
                    found.append((used.stat().st_mtime, int(used.read_text() or 0), used.parent))
                except (FileNotFoundError, ValueError):
                    continue
        return sorted(found)

    def _make_room(self, keep: Path) -> None:
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        for _, size, folder in entries:
            if total <= self.max_bytes:
                return
            if folder == keep or self.pinned(folder):
                continue
            self.evict(folder)
            total -= size
        if total > self.max_bytes:
            mine = next((s for _, s, f in entries if f == keep), 0)
            self.evict(keep)
            raise CacheFull(f"the local cache (DLSERVE_CACHE_MAX_BYTES={self.max_bytes}) cannot hold "
                            f"{keep.relative_to(self.root).as_posix()} ({mine} bytes) beside the entries in use; "
                            "raise the limit or wait for the jobs using them")

    def evict(self, folder: Path) -> None:
        # the marker goes first: from then on the folder is no entry, whatever is left of it after a crash
        (folder / USED).unlink(missing_ok=True)
        gone = folder.with_name(f".evicted-{uuid.uuid4().hex[:8]}")
        try:
            os.replace(folder, gone)
        except FileNotFoundError:
            return
        shutil.rmtree(gone, ignore_errors=True)
        log.info("cache: evicted %s", folder.relative_to(self.root).as_posix())
