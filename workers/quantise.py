"""A quantisation job (issue 20), run by the worker that claimed it (workers/runner.py hands it here, inside the
same heartbeat, cancel, failure and registration handling as a training run): the parent version's dataset is
loaded as its run loaded it, calibration batches are drawn from its training split, each method is tried
(workers/int8.py), parent and int8 are scored by the family's ONNX Runtime evaluation on the held-out split,
and the fastest int8 version within the tolerance is registered next to its parent, or none is."""

from __future__ import annotations

import logging
import math
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnxruntime as ort

from app.datasets.service import dataset_path
from app.db.tables import Dataset
from app.errors import DlserveError
from app.inference.runtime import session_options
from app.jobs.quantisation import QUANTISATION, request_of
from app.registry import service as registry
from app.registry.onnx_inspect import inspect_here
from app.registry.store import MODEL_FILE
from models import family
from models.contract import QuantisationGate
from workers import int8
from workers.lease import Claimed, Reporter, forget_metrics_after

if TYPE_CHECKING:
    from workers.runner import _Run

log = logging.getLogger("dlserve.worker")
# What the int8 version does not take over from its parent's metadata: the PyTorch weights (an int8 version is
# no starting point for training) and the export's PyTorch parity (the int8 version's is its own).
NOT_INHERITED = ("weights", "parity", QUANTISATION)
SAME_SPEED = 1.05  # timings within 5 % of each other are noise on a shared machine, not a difference


class QuantisationRefused(DlserveError):
    """No int8 version passes the family's gate: the job fails with this, and nothing is registered."""


def loss(gate: QuantisationGate, parent: float, int8_value: float) -> float:
    """How much worse the int8 version is on the gate's metric (negative: better)."""
    return parent - int8_value if gate.direction == "max" else int8_value - parent


def quantise(run: _Run, job: Claimed) -> None:
    request = request_of(job.params)
    contract = family(job.task)
    gate = contract.quantisation
    if gate is None or not contract.calibration:
        raise QuantisationRefused(f"the {job.task} family no longer declares int8 versions (a quantisation gate and "
                                  "calibration batches)")
    with run.sessions() as session:
        try:
            parent = registry.get_version(session, job.register_as, request.parent)
        except DlserveError as e:
            raise QuantisationRefused(f"the version to quantise is gone: {e.detail}") from None
        dataset = session.get(Dataset, job.dataset_id) if job.dataset_id else None
        if dataset is None:
            raise QuantisationRefused("the dataset the version was trained on was deleted before the job started")
        parent_key, parent_sha = parent.artifact_uri, parent.sha256
        meta, signature = dict(parent.meta or {}), dict(parent.signature or {})
        fmt = dataset.format
        source = {"dataset_id": dataset.id, "name": dataset.name, "sha256": dataset.sha256}
    # outside the session: with an object store these download (the parent checked against its sha256, the
    # dataset unpacked) into this host's cache, pinned there until the run ends (runner.run_training)
    folder = run.store.fetch(parent_key, parent_sha)
    path = dataset_path(run.store, dataset, run.settings)
    run.store.pin(parent_key)
    run.store.pin(dataset.uri)

    methods = list(gate.methods) if request.method == "auto" else [request.method]
    forget_metrics_after(run.sessions, job.id, 0)  # a job delivered again measures everything again
    report = Reporter(run.sessions, job.id, run.me, total=3 + len(methods), epochs=1,
                      batch_size=request.batch_size, interval_s=run.settings.progress_interval_s,
                      extra={"methods": methods}, runlog=run.runlog)
    report.flush("loading")
    training = contract.training
    data = training.load_dataset(path, fmt, contract.config(**meta["config"]))
    batches = list(training.calibration_batches(data, request.calibration_batches, request.batch_size))
    if not batches:
        raise QuantisationRefused("the training split holds no rows to calibrate with")
    rows = sum(_rows(b, contract.multi_file) for b in batches)
    log.info("job %s: quantising %s version %d (%s) with %s; %d calibration batches, %d rows of the training split",
             job.id, job.register_as, request.parent, job.task, " and ".join(methods), len(batches), rows)

    evaluation = contract.evaluation
    parent_scores = evaluation.evaluate_onnx(data, folder)
    parent_value = _metric(parent_scores, gate, "the fp32 parent")
    log.info("job %s: fp32 parent: %s %.6g", job.id, gate.metric, parent_value)
    report(1, {f"parent_{gate.metric}": parent_value})
    report.flush("quantising")

    run.store.ensure()
    work = run.store.staging_dir / f"int8-{job.id}-{uuid.uuid4().hex}"
    try:
        tried: list[dict[str, Any]] = []
        for step, method in enumerate(methods, start=2):
            tried.append(_try(job, method, folder, work / method, batches, contract, gate, parent_value,
                              request.tolerance, evaluation, data))
            if "error" not in tried[-1]:
                report(step, {f"{method}_{gate.metric}": tried[-1]["value"]})
            report.flush("quantising" if step <= len(methods) else "timing")
        scored = [t for t in tried if "error" not in t]
        ms = int8.ms_per_batch({"parent": folder, **{t["method"]: work / t["method"] for t in scored}}, batches,
                               contract.multi_file, session_options(run.settings))
        parent_ms = ms["parent"]
        for t in scored:
            t["ms"] = ms[t["method"]]
            log.info("job %s: %s int8: %.3f ms per batch of %d against the parent's %.3f", job.id, t["method"],
                     t["ms"], request.batch_size, parent_ms)
        report(report.total - 1, {"parent_ms_per_batch": parent_ms, **{f"{t['method']}_ms_per_batch": t["ms"]
                                                                       for t in scored}})
        report.flush("registering")  # the figures are the job's, registered or refused
        best = _choose(tried, gate, parent_value, request.tolerance, request.method)
        out = work / best["method"]
        lineage = {
            "parent_version": request.parent, "method": best["method"], "requested": request.method,
            "format": "QDQ" if best["method"] == "static" else "dynamic", "runtime": f"onnxruntime {ort.__version__}",
            "op_types": list(gate.op_types) if gate.op_types is not None else None,
            "weight_bits": 7 if int8.REDUCE_RANGE else 8,
            "calibration": {**source, "split": "train", "batches": len(batches), "batch_size": request.batch_size,
                            "rows": rows},
            "parity": {"metric": gate.metric, "direction": gate.direction, "split": "validation",
                       "parent": parent_value, "int8": best["value"], "delta": best["value"] - parent_value,
                       "tolerance": request.tolerance, "parent_ms_per_batch": parent_ms,
                       "int8_ms_per_batch": best["ms"],
                       "speedup": round(parent_ms / best["ms"], 3) if best["ms"] else None,
                       "size_bytes": {"parent": int8.size_bytes(folder), "int8": best["size_bytes"]}},
            "candidates": [{k: v for k, v in t.items() if k != "scores"} for t in tried],
        }
        metadata = {**{k: v for k, v in meta.items() if k not in NOT_INHERITED}, QUANTISATION: lineage}
        model_file, extra = out / MODEL_FILE, {f.name: f for f in out.iterdir() if f.name != MODEL_FILE}
        report.step = report.total
        run._register(job, model_file, _signature(out, signature, contract.multi_file), metadata,
                      dict(best["scores"]), report, extra)
        log.info("job %s: int8 (%s) registered: %s %.6g against %.6g, %.3f ms per batch against %.3f", job.id,
                 best["method"], gate.metric, best["value"], parent_value, best["ms"], parent_ms)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _try(job: Claimed, method: str, parent: Path, out: Path, batches: list, contract, gate: QuantisationGate,
         parent_value: float, tolerance: float, evaluation, data) -> dict[str, Any]:
    """One method, quantised and scored; a method ONNX Runtime cannot apply to these graphs is an error in its
    entry (method auto goes on with the next)."""
    try:
        int8.quantise(parent, out, method, batches, contract.multi_file, gate.op_types)
        scores = evaluation.evaluate_onnx(data, out)
    except Exception as e:
        log.warning("job %s: %s quantisation failed: %s: %s", job.id, method, type(e).__name__, e)
        shutil.rmtree(out, ignore_errors=True)
        return {"method": method, "error": f"{type(e).__name__}: {str(e)[:500]}"}
    value = _metric(scores, gate, f"the {method} int8 version")
    lost, size = loss(gate, parent_value, value), int8.size_bytes(out)
    log.info("job %s: %s int8: %s %.6g (loses %.4g; tolerance %g), %d bytes", job.id, method, gate.metric, value,
             lost, tolerance, size)
    return {"method": method, "value": value, "loss": lost, "passes": lost <= tolerance, "size_bytes": size,
            "scores": scores}


def _choose(tried: list[dict[str, Any]], gate: QuantisationGate, parent: float, tolerance: float,
            requested: str) -> dict[str, Any]:
    """The fastest candidate within the tolerance, where candidates within SAME_SPEED of the fastest are as fast
    and the smaller loss wins among them; or QuantisationRefused saying, for each, the metric, the parent's
    value, the int8 value and the tolerance."""
    passing = [t for t in tried if t.get("passes")]
    if passing:
        fastest = min(t["ms"] for t in passing)
        return min((t for t in passing if t["ms"] <= fastest * SAME_SPEED), key=lambda t: (t["loss"], t["ms"]))
    why = []
    for t in tried:
        if "error" in t:
            why.append(f"{t['method']}: ONNX Runtime could not quantise or run it ({t['error']})")
        else:
            why.append(f"{t['method']}: {gate.metric} {t['value']:.6g} against the fp32 parent's {parent:.6g}, "
                       f"a loss of {t['loss']:.6g}, more than the tolerance {tolerance:g}")
    raise QuantisationRefused(f"no int8 version registered: {'; '.join(why)} (method {requested}; "
                              f"{gate.metric}: {'higher' if gate.direction == 'max' else 'lower'} is better)")


def _metric(scores: dict[str, Any], gate: QuantisationGate, what: str) -> float:
    value = scores.get(gate.metric)
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise QuantisationRefused(f"the family's evaluation gave no finite {gate.metric} for {what} "
                                  f"(it gave {sorted(scores)})")
    return float(value)


def _rows(batch: dict[str, Any], multi_file: bool) -> int:
    feeds = next(iter(batch.values())) if multi_file else batch
    return int(len(next(iter(feeds.values()))))


def _signature(folder: Path, parent: dict[str, Any], multi_file: bool) -> dict[str, Any]:
    """The int8 version's: its model.onnx read again (quantisation keeps the graphs' float inputs and outputs);
    a multi_file version keeps what its family declared for the whole decoder, as the training run wrote it."""
    own = inspect_here(folder / MODEL_FILE)
    if not multi_file:
        return own
    graphs = {g: inspect_here(folder / g) for g in int8.graphs(folder)}
    about = {k: v for k, v in own.items() if k not in ("inputs", "outputs")}
    return {**parent, **about, "graphs": {g: {"inputs": s["inputs"], "outputs": s["outputs"]}
                                          for g, s in graphs.items()}}
