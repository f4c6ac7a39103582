"""What can be downloaded: a version's files, a run's weights and checkpoint, and a folder as a zip streamed
while it is written (never whole in memory). Files are found by the names listed here, never by a path a
client sends, so nothing outside the artifact store can be named."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.registry.store import MODEL_FILE, ArtifactStore

CHUNK = 1024 * 1024
_EPOCH = (1980, 1, 1, 0, 0, 0)  # a fixed time in the zip: the same version gives the same bytes


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: str  # model, file (another file of the version), weights, checkpoint
    scope: str  # the key scope a download needs
    path: Path
    sha256: str | None = None

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def run_artifacts(store: ArtifactStore, run_id: str, version_key: str | None,
                  model_sha256: str | None) -> dict[str, Artifact]:
    """name -> artifact, for the files of the version the run made and the run's own weights and checkpoint."""
    found: dict[str, Artifact] = {}
    if version_key is not None:
        folder = store.fetch(version_key, model_sha256)
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if path.is_file() and not path.name.startswith("."):
                model = path.name == MODEL_FILE
                found[path.name] = Artifact(path.name, "model" if model else "file", "read", path,
                                            model_sha256 if model else None)
    # PyTorch pickles: `train` scope (see app/api/artifacts.py for why)
    for name, kind, key in (("weights.pt", "weights", f"runs/{run_id}/weights.pt"),
                            ("last.pt", "checkpoint", f"runs/{run_id}/checkpoints/last.pt")):
        path = store.fetch_file(key)
        if path is not None:
            found[name] = Artifact(name, kind, "train", path)
    return found


def is_single_file(folder: Path) -> bool:
    """A version that is its model.onnx alone (and the signature written beside it)."""
    # (dot files are the cache's own bookkeeping, app/store/cache.py)
    return {p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")} <= {MODEL_FILE,
                                                                                                 "signature.json"}


class _Sink(io.RawIOBase):
    """A write-only stream that hands out what was written since the last drain (zipfile writes into it)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self._chunks.append(bytes(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def drain(self) -> Iterator[bytes]:
        chunks, self._chunks = self._chunks, []
        yield from chunks


def zip_folder(folder: Path) -> Iterator[bytes]:
    """The folder's files as a zip, produced a megabyte at a time (ONNX graphs stored, the rest deflated)."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            info = zipfile.ZipInfo(path.name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_STORED if path.suffix == ".onnx" else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(path, "rb") as src, archive.open(info, "w", force_zip64=path.stat().st_size > 2**31) as dest:
                while chunk := src.read(CHUNK):
                    dest.write(chunk)
                    yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()
