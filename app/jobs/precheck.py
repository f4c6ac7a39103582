"""Before a job is queued: everything its worker would find wrong before its first training step, as a
422 naming the key. The family checks its config against the dataset's stored stats (its config.py's
check_against_dataset); `init_from` is checked here against the registry and the artifact store, and
the family says which tasks it starts from (INIT_FROM_TASKS) and whether their architecture fits
(check_init_from)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.datasets.service import dataset_path
from app.db.tables import Dataset
from app.errors import DlserveError, Unprocessable
from app.registry import service as registry
from app.registry.store import ArtifactStore
from models import family
from models.common import job_keys
from models.common.checks import ConfigError, is_weights_file, registry_ref, weights_file
from models.contract import Family


def check(session: Session, store: ArtifactStore | None, task: str, values: dict[str, Any], dataset: Dataset) -> None:
    contract = family(task)
    values = job_keys.split(values)[0]
    cfg = contract.config(**values)
    stats = dataset.stats or {}
    try:
        contract.check_config(cfg, stats)
        ref = values.get("init_from")
        if ref:
            _init_from(session, store, contract, cfg, ref, dataset, stats, task)
    except ConfigError as e:
        field = f"config.{e.key}" if e.key else "dataset_id"
        raise Unprocessable(f"{field}: {e.message}", field=field) from e


def _init_from(session: Session, store: ArtifactStore | None, contract: Family, cfg, ref: str, dataset: Dataset,
               stats: dict[str, Any], task: str) -> None:
    if is_weights_file(ref):
        if store is None:
            return
        folder = dataset_path(store, dataset)
        if not folder.is_dir():
            raise ConfigError("init_from", f"{ref!r}: the dataset is a single file; ship weights inside an archive "
                                           "dataset, or name a registered version")
        if weights_file(folder, ref) is None:
            raise ConfigError("init_from", f"{ref!r}: the dataset's archive holds no such file")
        return  # what the file holds is only known once torch reads it, in the worker
    name, number, alias = registry_ref(ref)
    try:
        version = registry.resolve(session, name, number, alias)
    except DlserveError as e:
        raise ConfigError("init_from", f"{ref!r}: {e.detail}") from e
    accepted = contract.init_from_tasks
    if version.task not in accepted:
        raise ConfigError("init_from", f"{ref!r} is a {version.task} model; a {task} job starts from "
                                       f"{' or '.join(accepted)} versions")
    meta = version.meta or {}
    uri = (meta.get("weights") or {}).get("uri")
    if not uri or (store is not None and not store.has_file(uri)):
        raise ConfigError("init_from", f"{ref!r} has no PyTorch weights (only versions trained by dlserve keep "
                                       "them; an uploaded ONNX file does not)")
    if contract.check_init_from is not None:
        contract.check_init_from(cfg, ref, version.task, meta, stats)
