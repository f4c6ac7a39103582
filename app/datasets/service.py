"""Datasets: content-addressed uploads, unpacked safely and validated by the family's loader.

    <artifact root>/datasets/<sha256>/files/...   an archive format, unpacked
    <artifact root>/datasets/<sha256>/data.<fmt>  a single-file format, as uploaded

With an object store (DLSERVE_ARTIFACT_ROOT=s3://...) a dataset is one object, `datasets/<sha256>/upload`: the
bytes as uploaded, whose sha256 is the dataset's. A host that needs the files (a worker) downloads it, checks
it and unpacks it into its cache, where the folder above is.

Files are built in staging and appear under their final name by one rename. The same bytes are one
dataset: a second upload finds the first. Functions flush but never commit (the route does); the
slow part (unpacking, validating) touches no database, so it holds no lock while it runs.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.datasets.archive import Limits, extract, is_archive
from app.db.tables import Dataset, TrainingRun
from app.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable
from app.registry.service import check_task
from app.registry.store import ArtifactStore
from app.settings import Settings, get_settings
from models import family
from models.common.errors import DatasetTooLarge
from models.contract import Family

ACTIVE = ("queued", "running")


@dataclass
class Upload:
    task: str
    format: str
    name: str
    family: Family


def check_upload(task: str, fmt: str | None, name: str | None, filename: str) -> Upload:
    check_task(task)
    contract = family(task)
    fmt = fmt or contract.data.guess_format(filename or "")
    if fmt is None:
        raise Unprocessable(f"field 'format' is needed (cannot tell it from {filename!r}); "
                            f"{task} takes {', '.join(contract.formats)}", field="format")
    if fmt not in contract.formats:
        choices = "; ".join(f"{k}: {v}" for k, v in contract.formats.items())
        raise Unprocessable(f"field 'format': {fmt!r} is not a {task} format; choose one of {choices}", field="format")
    name = (name or _stem(filename) or "dataset").strip()
    if len(name) > 200:
        raise Unprocessable("field 'name' is longer than 200 characters", field="name")
    return Upload(task, fmt, name, contract)


def _stem(filename: str) -> str:
    base = os.path.basename((filename or "").replace("\\", "/"))
    return re.sub(r"(\.tar)?\.[A-Za-z0-9]+$", "", base)


def find_by_sha(session: Session, sha256: str, upload: Upload) -> Dataset | None:
    row = session.scalar(select(Dataset).where(Dataset.sha256 == sha256))
    if row is not None and (row.task, row.format) != (upload.task, upload.format):
        raise Conflict(f"these bytes are already dataset {row.id} ({row.task}, {row.format}); "
                       "the same file cannot be another task's or format's dataset", dataset_id=row.id)
    return row


def materialise(store: ArtifactStore, settings: Settings, upload: Upload, staged: Path, sha256: str) -> dict[str, Any]:
    """Unpacks (archive formats), validates and moves the files to datasets/<sha256>; returns the stats."""
    key = f"datasets/{sha256}"
    build = store.staging_dir / f"dataset-{uuid.uuid4().hex}"
    build.mkdir(parents=True)
    try:
        budget = unpack(settings, upload.format, upload.family, staged, build)
        stats = _validate(upload, data_path(build, upload.format, upload.family), settings, budget)
        if store.remote is not None:
            # the object before the row that points at it is committed: the bytes as uploaded
            single = build / f"data.{upload.format}"
            store.publish_object(upload_key(key), single if single.is_file() else staged)
        final = store.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        if store.cache is not None:
            store.cache.admit(build, final)
        # A folder already there holds these very bytes (same hash), left by an earlier upload whose
        # commit failed or that another request is committing now: keep it, it is complete.
        elif not final.exists():
            os.replace(build, final)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return stats


def upload_key(key: str) -> str:
    """The object that is the dataset in an object store: its bytes as uploaded."""
    return f"{key}/upload"


def unpack(settings: Settings, fmt: str, contract: Family, staged: Path, build: Path) -> int:
    """Lays the upload out in `build` (files/... or data.<fmt>); returns the byte budget its loader may use.
    A single-file upload is moved, not copied (staged_copy tolerates it gone)."""
    # A format in the family's either_formats is a single file or an archive of files, told apart by
    # content (translation's `parallel`: one TSV, or aligned train.<lang> files in a zip/tar).
    if fmt in contract.archive_formats or (fmt in contract.either_formats and is_archive(staged)):
        limits = Limits(settings.dataset_max_bytes, settings.dataset_max_files, settings.dataset_max_ratio)
        extract(staged, build / "files", limits)
        return settings.dataset_max_bytes  # the unpacked files are on disk, already within their budget
    # A single file the family reads in place (npz, a zip of MovieLens files) may still inflate in
    # memory: it gets the same budget as an archive unpacked to disk, ratio included.
    budget = min(settings.dataset_max_bytes, int(max(staged.stat().st_size, 1) * settings.dataset_max_ratio))
    os.replace(staged, build / f"data.{fmt}")
    return budget


def _validate(upload: Upload, path: Path, settings: Settings, budget: int) -> dict[str, Any]:
    try:
        return upload.family.data.validate(path, upload.format, max_bytes=budget)
    except DatasetTooLarge as e:
        extra = {"entry": e.entry} if e.entry else {}
        raise PayloadTooLarge(f"field 'file': {e}; an upload may unpack to at most {settings.dataset_max_ratio:g} "
                              f"times its size and {settings.dataset_max_bytes} bytes in all (a compression bomb?)",
                              field="file", limit_bytes=budget, limit_ratio=settings.dataset_max_ratio,
                              **extra) from None
    except ValueError as e:  # the family's DatasetError
        entry = getattr(e, "entry", None)
        extra = {"entry": entry} if entry else {}
        # a family may name the file it read: the folder it was unpacked to is the server's business
        reason = str(e).replace(f"{path}{os.sep}", "").replace(str(path), "the upload")
        reason = reason.replace(str(settings.home.resolve()), "<home>")
        raise Unprocessable(f"field 'file' is not a valid {upload.format} dataset: {reason}", field="file",
                            **extra) from e


def data_path(folder: Path, fmt: str, contract: Family) -> Path:
    unpacked = fmt in contract.archive_formats or (fmt in contract.either_formats and (folder / "files").is_dir())
    return folder / "files" if unpacked else folder / f"data.{fmt}"


def dataset_path(store: ArtifactStore, dataset: Dataset, settings: Settings | None = None) -> Path:
    """Where the family's loader reads this dataset: with an object store, in this host's cache, downloaded,
    checked against the dataset's sha256 and unpacked first when it is not there yet."""
    contract = family(dataset.task)
    if store.remote is not None:
        limits = settings or get_settings()

        def build(file: Path, folder: Path) -> None:
            unpack(limits, dataset.format, contract, file, folder)

        store.fetch_built(dataset.uri, upload_key(dataset.uri), dataset.sha256, build)
    return data_path(store.path(dataset.uri), dataset.format, contract)


def add(session: Session, upload: Upload, sha256: str, size: int, stats: dict[str, Any]) -> tuple[Dataset, bool]:
    """Records the dataset; (row, created). A concurrent upload of the same bytes may win: then its row."""
    row = Dataset(name=upload.name, task=upload.task, format=upload.format, sha256=sha256, size_bytes=size,
                  uri=f"datasets/{sha256}", stats=stats)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return find_by_sha(session, sha256, upload), False
    return row, True


def get(session: Session, dataset_id: str, *, for_update: bool = False) -> Dataset:
    stmt = select(Dataset).where(Dataset.id == dataset_id)
    row = session.scalar(stmt.with_for_update() if for_update else stmt)
    if row is None:
        raise NotFound(f"no dataset with id {dataset_id!r}")
    return row


def list_page(session: Session, task: str | None, limit: int, offset: int) -> tuple[list[Dataset], int]:
    stmt = select(Dataset)
    if task:
        stmt = stmt.where(Dataset.task == task)
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = session.scalars(stmt.order_by(Dataset.created_at.desc(), Dataset.id).limit(limit).offset(offset))
    return list(rows), total


def active_runs(session: Session, dataset_id: str) -> list[str]:
    return list(session.scalars(select(TrainingRun.id).where(
        TrainingRun.dataset_id == dataset_id, TrainingRun.status.in_(ACTIVE))))


def delete(session: Session, dataset_id: str) -> str:
    """Deletes the row (409 while a queued or running run uses it); returns the key whose files the
    caller removes after its commit."""
    row = get(session, dataset_id, for_update=True)
    runs = active_runs(session, dataset_id)
    if runs:
        raise Conflict(f"dataset {dataset_id} is used by {len(runs)} queued or running job(s) ({', '.join(runs)}); "
                       "cancel them or wait for them to finish", jobs=runs)
    key = row.uri
    session.delete(row)
    session.flush()
    return key
