"""The artifact store: a directory laid out like a Triton model repository.

    <root>/models/<name>/<version>/model.onnx
    <root>/models/<name>/<version>/signature.json
    <root>/models/<name>/<version>/<other files>   encoder-decoder versions: decoder.onnx, tokenizers
    <root>/.staging/                      uploads in flight (same file system, so rename is atomic)

The database records store-relative keys (`models/<name>/<version>`), so the root can move, or be
replaced by object storage behind the same methods. Every write lands in staging first and appears
under its final name by one rename: a crash leaves staging litter, never a half model.

With an object store behind it (`remote`, DLSERVE_ARTIFACT_ROOT=s3://...; see app/store/), the folder is this
host's cache of it (app/store/cache.py): what is written here is published to the object store before its
row is committed, and what is read is fetched first, checked against its sha256. Without one, the folder is
the store and `fetch`/`publish` cost nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from app.errors import PayloadTooLarge
from app.private import private_dir
from app.store.base import ObjectStore
from app.store.cache import Cache
from app.store.local import LocalObjects

CHUNK = 1024 * 1024
MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "signature.json"
CACHED_SHA = ".sha256"  # in a cached version's folder: model.onnx's, as checked when it was fetched


class ArtifactStore:
    def __init__(self, root: Path, remote: ObjectStore | None = None, cache_max_bytes: int = 0):
        self.root = Path(root).resolve()
        self.staging_dir = self.root / ".staging"
        self.remote = remote
        # the one interface to the stored objects (the sweep, the contract tests): the bucket, or this folder
        self.objects: ObjectStore = remote or LocalObjects(self.root)
        self.cache = Cache(self.root, cache_max_bytes) if remote is not None else None
        self._pins: list[Path] = []

    @property
    def uri(self) -> str:
        return self.objects.uri

    def ensure(self) -> None:
        private_dir(self.root)
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        (self.root / "models").mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if not p.is_relative_to(self.root):
            raise ValueError(f"artifact key {key!r} escapes the store")
        return p

    @contextmanager
    def staged_copy(self, src: IO[bytes], limit: int) -> Iterator[tuple[Path, str, int]]:
        """Streams `src` into a staging file, hashing as it goes; yields (path, sha256, size).
        The file is removed on exit unless it was moved away."""
        self.ensure()
        fd, name = tempfile.mkstemp(dir=self.staging_dir, suffix=".part")
        path = Path(name)
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(f"the file is over the limit of {limit} bytes", limit_bytes=limit)
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            yield path, digest.hexdigest(), size
        finally:
            path.unlink(missing_ok=True)

    def put_model(self, name: str, version: int, model_file: Path, signature: dict[str, Any],
                  extra_files: dict[str, Path] | None = None) -> str:
        """Moves a staged model (and the version's other staged files, by their names in the folder) into
        models/<name>/<version>/ with its signature; returns the key."""
        for fname in extra_files or {}:
            if fname in (MODEL_FILE, SIGNATURE_FILE) or "/" in fname or fname.startswith("."):
                raise ValueError(f"{fname!r} cannot be a version's extra file name")
        key = f"models/{name}/{version}"
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        build = self.staging_dir / f"{name}-{version}-{uuid.uuid4().hex}"
        build.mkdir()
        try:
            os.replace(model_file, build / MODEL_FILE)
            for fname, src in (extra_files or {}).items():
                os.replace(src, build / fname)
            _write_json(build / SIGNATURE_FILE, signature)
            if self.remote is not None:
                self.remote.delete_prefix(f"{key}/")  # what a crash before the commit left (see below)
                self._publish_folder(key, build)
                (build / CACHED_SHA).write_text(signature.get("sha256") or "")
                if final.exists():  # see below: never committed, so nothing points at it
                    self.cache.evict(final)
                self.cache.admit(build, final)
                return key
            if final.exists():
                # Only a crash between placing files and committing the row can leave this: the
                # version number was never committed, so nothing in the registry points here.
                shutil.rmtree(final)
            os.replace(build, final)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            if self.remote is not None:
                self.remote.delete_prefix(f"{key}/")
            raise
        return key

    def model_file(self, key: str, sha256: str | None = None) -> Path:
        return self.fetch(key, sha256) / MODEL_FILE

    def remove(self, key: str) -> None:
        shutil.rmtree(self.path(key), ignore_errors=True)
        if self.remote is not None:
            self.remote.delete_prefix(f"{key}/")

    def check(self) -> str:
        self.ensure()
        if not os.access(self.root, os.W_OK):
            raise RuntimeError(f"artifact root {self.root} is not writable")
        return self.objects.check()

    # -- an object store behind the folder -------------------------------------------------------------
    def _publish_folder(self, key: str, folder: Path) -> None:
        for file in sorted(folder.iterdir()):
            if file.is_file() and not file.name.startswith("."):
                self.remote.put_file(f"{key}/{file.name}", file)

    def fetch(self, key: str, sha256: str | None = None) -> Path:
        """The folder of a version (`models/<name>/<version>`) here, downloaded when it is not; `sha256` is
        model.onnx's as the registry recorded it (the other files carry theirs in the object store)."""
        entry = self.path(key)
        if self.remote is None:
            return entry
        if self.cache.has(entry):
            # a model deleted and made again under its name numbers its versions from 1 again: another
            # host's copy of the old version 1 is not this one
            if sha256 is None or _read(entry / CACHED_SHA) == sha256:
                self.cache.touch(entry)
                return entry
            self.cache.evict(entry)
        objects = [o.key for o in self.remote.list(f"{key}/")]
        if not objects:
            return entry  # the caller finds the files missing and says so

        def fill(build: Path) -> None:
            for k in objects:
                self.remote.get_to_path(k, build / k[len(key) + 1:], sha256 if k == f"{key}/{MODEL_FILE}" else None)
            (build / CACHED_SHA).write_text(sha256 or "")

        return self._build_entry(entry, fill)

    def fetch_built(self, key: str, object_key: str, sha256: str, build_fn) -> Path:
        """A cache entry made from one object (a dataset from its archive): `build_fn(file, folder)` builds the
        folder from the downloaded, checked file."""
        entry = self.path(key)
        if self.remote is None:
            return entry
        if self.cache.has(entry):
            self.cache.touch(entry)
            return entry

        def build(folder: Path) -> None:
            file = self.staging_dir / f"get-{uuid.uuid4().hex}"
            try:
                self.remote.get_to_path(object_key, file, sha256)
                build_fn(file, folder)
            finally:
                file.unlink(missing_ok=True)

        return self._build_entry(entry, build)

    def _build_entry(self, entry: Path, fill) -> Path:
        self.ensure()
        build = self.staging_dir / f"fetch-{uuid.uuid4().hex}"
        build.mkdir()
        try:
            fill(build)
            return self.cache.admit(build, entry)
        finally:
            shutil.rmtree(build, ignore_errors=True)

    def publish(self, key: str) -> None:
        """Copies the file written at path(key) to the object store (checkpoints, weights)."""
        if self.remote is not None:
            self.remote.put_file(key, self.path(key))

    def publish_object(self, key: str, file: Path) -> None:
        if self.remote is not None:
            self.remote.put_file(key, file)

    def fetch_file(self, key: str) -> Path | None:
        """path(key), fresh from the object store when there is one (a checkpoint another worker wrote);
        None when there is no such file."""
        path = self.path(key)
        if self.remote is not None:
            info = self.remote.stat(key)
            if info is None:
                path.unlink(missing_ok=True)
                return None
            try:
                here = path.stat()
            except FileNotFoundError:
                here = None
            if here is not None and here.st_size == info.size and here.st_mtime >= info.modified.timestamp():
                return path  # this host's copy is the object's latest (a HEAD, not a download)
            self.remote.get_to_path(key, path)
            self.cache.account(path)  # the run's folder becomes an entry that may be evicted
        return path if path.is_file() else None

    def forget(self, key: str) -> None:
        """Drops this host's copy of what the object store holds (a run's folder once the run is over)."""
        if self.remote is not None:
            self.cache.evict(self.path(key))

    def has_file(self, key: str) -> bool:
        return self.remote.exists(key) if self.remote is not None else self.path(key).is_file()

    def pin(self, key: str) -> None:
        """Keeps the cache entry at `key` from eviction until release_pins() (or this process's end)."""
        if self.cache is not None and self.path(key).is_dir():
            self._pins.append(self.cache.pin(self.path(key)))

    def release_pins(self) -> None:
        for pin in self._pins:
            pin.unlink(missing_ok=True)
        self._pins.clear()


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
