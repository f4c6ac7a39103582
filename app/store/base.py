"""The object-store interface: flat keys (`models/<name>/<version>/model.onnx`) mapped to whole objects.

Two backends implement it: a local folder (app/store/local.py, the embedded default, no dependencies) and an
S3-compatible bucket (app/store/s3.py). An object appears whole or not at all (a rename on disk, a completed
multipart upload in S3), and a download is checked against the sha256 recorded for it before anyone reads it.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.errors import ServiceUnavailable

CHUNK = 1024 * 1024
_KEY = re.compile(r"^[A-Za-z0-9._@+=-]+(/[A-Za-z0-9._@+=-]+)*$")


class ArtifactCorrupt(ServiceUnavailable):
    """A downloaded object is not what was stored (its sha256 differs from the recorded one): a 503 for a
    client of the API (nothing it can fix by asking again differently), a failed job for a worker."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime  # timezone-aware, UTC


@dataclass(frozen=True)
class PendingUpload:
    """A multipart upload started and neither completed nor aborted."""
    key: str
    upload_id: str
    initiated: datetime


def check_key(key: str) -> str:
    """Keys are relative paths of plain names: never `..`, never absolute, never empty parts."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"artifact key {key!r} is not a store key")
    return key


def sha256_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class ObjectStore(ABC):
    """What the registry, datasets, checkpoints and the API's model cache use; `uri` names it in messages."""

    uri: str

    @abstractmethod
    def put_file(self, key: str, path: Path, sha256: str | None = None) -> str:
        """Stores the file under `key` (visible only once whole) and returns its sha256."""

    @abstractmethod
    def get_to_path(self, key: str, dest: Path, sha256: str | None = None) -> None:
        """Writes the object to `dest` (created whole, by a rename), checked against `sha256`, or else the
        sha256 recorded when it was stored (S3 keeps it with the object; a folder keeps none).
        FileNotFoundError when there is no such object, ArtifactCorrupt when the bytes differ."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    def stat(self, key: str) -> ObjectInfo | None:
        """The object's size and time, or None when there is none."""
        return next((o for o in self.list(key) if o.key == key), None)

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix` (a plain string prefix)."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Removes the objects; a missing one is no error."""

    def delete_prefix(self, prefix: str) -> int:
        keys = [o.key for o in self.list(prefix)]
        self.delete(keys)
        return len(keys)

    def pending_uploads(self) -> list[PendingUpload]:
        """Multipart uploads in flight (the local backend has none: its writes are renames)."""
        return []

    def abort_upload(self, upload: PendingUpload) -> None:  # noqa: B027 (no-op where there are none)
        pass

    def check(self) -> str:
        """For /readyz: raises when the store cannot be reached or written."""
        return "ok"


def verify(path: Path, want: str | None, key: str, where: str) -> None:
    if want is None:
        return
    got, _ = sha256_file(path)
    if got != want:
        path.unlink(missing_ok=True)
        raise ArtifactCorrupt(f"the object {key} in {where} does not match its recorded sha256 "
                              f"(expected {want[:12]}…, got {got[:12]}…): it was altered or damaged in the store")
