"""Quantisation jobs (issue 20) as the API sees them: an int8 version of a registered fp32 version, made by a
worker with ONNX Runtime's quantisation tools. Such a job is a row of training_runs like a training job, so it
is listed, watched, cancelled, leased and reaped by the same machinery; what marks it is its params, which
hold one key, QUANTISATION (no family's Config has a field of that name: tests/app/test_quantisation.py).
Everything a worker would find wrong before it starts is refused here with a 422."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import Dataset, ModelVersion, TrainingRun, new_id
from app.errors import Unprocessable
from app.registry import service as registry
from app.settings import Settings
from models import family
from models.contract import QuantisationGate

QUANTISATION = "quantisation"
METHODS = ("static", "dynamic")


@dataclass(frozen=True)
class Request:
    """What a quantisation job was asked to do, as its params store it."""
    parent: int  # the fp32 version's number, in the model the job registers into
    method: str  # "auto" (each of the gate's methods tried and measured), "static" or "dynamic"
    calibration_batches: int
    batch_size: int
    tolerance: float  # the largest loss of the gate's metric the int8 version may show


def is_quantisation(params: dict[str, Any] | None) -> bool:
    return bool(params) and set(params) == {QUANTISATION}


def request_of(params: dict[str, Any]) -> Request:
    return Request(**params[QUANTISATION])


def lineage_of(version: ModelVersion) -> dict[str, Any] | None:
    """The `quantisation` a version's metadata holds when it is an int8 version made here."""
    q = (version.meta or {}).get(QUANTISATION)
    return q if isinstance(q, dict) and "parent_version" in q else None


def tolerance(settings: Settings, task: str, gate: QuantisationGate) -> float:
    """The family's tolerance, or the setting's override for its task (DLSERVE_QUANTISATION_TOLERANCE)."""
    return float(settings.quantisation_tolerance.get(task, gate.tolerance))


def create(session: Session, settings: Settings, *, name: str, version: int, method: str, calibration_batches: int,
           batch_size: int, tolerance_override: float | None, alias: str | None) -> TrainingRun:
    """A queued quantisation job, flushed; the caller publishes it and commits (as app.api.jobs does)."""
    parent = registry.get_version(session, name, version)  # 404 for an unknown model or version
    where = f"version {version} of {name!r}"
    contract = family(parent.task)
    gate = contract.quantisation if contract is not None else None
    if gate is None:
        raise Unprocessable(f"{where} is a {parent.task} model, and the {parent.task} family has no int8 versions "
                            "(its contract declares no quantisation gate)", field="name")
    lineage = lineage_of(parent)
    if lineage is not None:
        raise Unprocessable(f"{where} is already an int8 version (quantised from version "
                            f"{lineage['parent_version']}); quantise its fp32 parent instead", field="version")
    if parent.status != "ready":
        raise Unprocessable(f"{where} is {parent.status}, not ready", field="version")
    if method != "auto" and method not in gate.methods:
        raise Unprocessable(f"field 'method': {method!r} is not worth trying for {parent.task} models; choose auto "
                            f"or one of {', '.join(gate.methods)}", field="method")
    if parent.run_id is None or parent.dataset_id is None or not (parent.meta or {}).get("config"):
        raise Unprocessable(f"{where} was not trained here (an uploaded version has no training run and dataset): "
                            "the calibration batches come from its run's training split and the check from its "
                            "held-out split, so only versions trained by a dlserve job can be quantised",
                            field="version")
    dataset = session.scalar(select(Dataset).where(Dataset.id == parent.dataset_id).with_for_update())
    if dataset is None:  # the FK is SET NULL on delete; this is the race with a delete in flight
        raise Unprocessable(f"the dataset {where} was trained on is gone; its calibration and held-out rows with it",
                            field="version")
    if not contract.calibration:
        raise Unprocessable(f"the {parent.task} family declares no calibration batches", field="name")
    allowed = tolerance(settings, parent.task, gate)
    if tolerance_override is not None and tolerance_override > allowed:
        raise Unprocessable(f"field 'tolerance': {tolerance_override:g} is looser than the {parent.task} gate's "
                            f"{allowed:g} ({gate.metric}); a request may only make the gate stricter",
                            field="tolerance")
    if alias is not None:
        registry.check_alias(alias)
    request = Request(parent=version, method=method, calibration_batches=calibration_batches, batch_size=batch_size,
                      tolerance=allowed if tolerance_override is None else tolerance_override)
    run = TrainingRun(id=new_id(), task=parent.task, dataset_id=dataset.id, params={QUANTISATION: asdict(request)},
                      status="queued", progress={}, latest_metrics={}, register_as=name, alias=alias, attempts=0,
                      cancel_requested=False)
    session.add(run)
    session.flush()
    return run
