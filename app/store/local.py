"""The object store as a local folder: a key is a file path under the root. Writes go to a temporary file in
the same folder and are renamed into place, so a reader never sees half an object. No dependencies."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from app.store.base import ObjectInfo, ObjectStore, check_key, sha256_file, verify


class LocalObjects(ObjectStore):
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_file(self, key: str, path: Path, sha256: str | None = None) -> str:
        digest = sha256 or sha256_file(path)[0]
        dest = self._path(key)
        if Path(path).resolve() == dest:
            return digest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".put-", suffix=".part")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get_to_path(self, key: str, dest: Path, sha256: str | None = None) -> None:
        src = self._path(key)
        if not src.is_file():
            raise FileNotFoundError(f"no object {key} in the artifact folder")
        dest = Path(dest)
        if dest.resolve() == src:
            verify(src, sha256, key, "the artifact folder")
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        shutil.copyfile(src, tmp)
        verify(tmp, sha256, key, "the artifact folder")
        os.replace(tmp, dest)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # walk only the folder the prefix names (or its parent, for a prefix ending mid-name)
        base = self.root / prefix if prefix.endswith("/") or not prefix else (self.root / prefix).parent
        if not base.is_dir():
            return
        for dirpath, _, files in os.walk(base):
            for name in files:
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix) and not name.endswith(".part"):
                    st = path.stat()
                    yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            # prune the folders the key emptied, short of the top ones (models/, .staging/ stay)
            parent = path.parent
            while parent.parent != self.root and parent != self.root and parent.is_dir() and not any(
                    parent.iterdir()):
                parent.rmdir()
                parent = parent.parent

    def check(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise RuntimeError(f"artifact root {self.root} is not writable")
        return "ok"
