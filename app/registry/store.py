"""The artifact store: a directory laid out like a Triton model repository.

    <root>/models/<name>/<version>/model.onnx
    <root>/models/<name>/<version>/signature.json
    <root>/models/<name>/<version>/<other files>   encoder-decoder versions: decoder.onnx, tokenizers
    <root>/.staging/                      uploads in flight (same file system, so rename is atomic)

The database records store-relative keys (`models/<name>/<version>`), so the root can move, or be
replaced by object storage behind the same methods. Every write lands in staging first and appears
under its final name by one rename: a crash leaves staging litter, never a half model.
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

CHUNK = 1024 * 1024
MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "signature.json"


class ArtifactStore:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.staging_dir = self.root / ".staging"

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
            if final.exists():
                # Only a crash between placing files and committing the row can leave this: the
                # version number was never committed, so nothing in the registry points here.
                shutil.rmtree(final)
            os.replace(build, final)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        return key

    def model_file(self, key: str) -> Path:
        return self.path(key) / MODEL_FILE

    def remove(self, key: str) -> None:
        shutil.rmtree(self.path(key), ignore_errors=True)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
