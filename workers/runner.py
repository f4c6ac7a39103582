"""One training run, start to finish: claim it, train with progress and per-epoch checkpoints (resuming
from the last one when the job is delivered again), evaluate, export ONNX, check ONNX Runtime against
PyTorch, register the version and move the alias. Imports torch: only workers and tests load this."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select

from app.datasets.service import dataset_path
from app.db.session import make_engine, make_sessionmaker
from app.db.tables import Dataset, TrainingRun
from app.errors import DlserveError
from app.jobs.quantisation import is_quantisation
from app.jobs.service import finish
from app.registry import service as registry
from app.registry.onnx_inspect import inspect_here
from app.registry.store import MODEL_FILE
from app.settings import Settings
from app.store import open_store
from models import family, register_all
from models.common import job_keys
from models.common.checks import is_weights_file, registry_ref, weights_file
from models.common.errors import ParityError
from models.contract import Family, run_metrics
from workers import distributed
from workers.lease import (
    Cancelled,
    Claimed,
    Heartbeat,
    LeaseLost,
    Reporter,
    claim,
    forget_metrics_after,
    release,
    worker_id,
)
from workers.quantise import quantise
from workers.runlog import captured

log = logging.getLogger("dlserve.worker")
PARITY_BATCH = 32


class InitFromError(RuntimeError):
    pass


def pick_device(setting: str) -> torch.device:
    """DLSERVE_DEVICE: auto (cuda when available), cpu, cuda or cuda:N. Called inside the task only, so
    the worker's parent process never initialises CUDA before forking."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"DLSERVE_DEVICE={setting} but this worker sees no CUDA device; use cpu or auto")
    return torch.device(setting)


def run_training(run_id: str, settings: Settings) -> str:
    """Returns what became of the run: succeeded, failed, cancelled, or skipped (nothing to do here)."""
    register_all(settings.families)  # a no-op where celery_app did it; callers outside a worker need it
    engine = make_engine(settings.resolved_database_url)
    run = None
    try:
        run = _Run(run_id, settings, make_sessionmaker(engine))
        return run.execute()
    finally:
        if run is not None:
            run.store.release_pins()  # the dataset's cache entry may be evicted once no run uses it
            run.store.forget(f"runs/{run_id}")  # with an object store, the checkpoints are in it
        engine.dispose()


class _Run:
    def __init__(self, run_id: str, settings: Settings, sessions):
        self.run_id, self.settings, self.sessions = run_id, settings, sessions
        self.me = worker_id()
        self.store = open_store(settings)
        self.checkpoint_key = f"runs/{run_id}/checkpoints/last.pt"
        self.checkpoint_file = self.store.path(self.checkpoint_key)

    def execute(self) -> str:
        job = claim(self.sessions, self.run_id, self.me, self.settings)
        if job is None:
            return "skipped"
        contract = family(job.task)
        with captured(self.sessions, job.id, self.settings.job_log_max_bytes,
                      contract.package if contract else None) as self.runlog:
            log.info("job %s: attempt %d in %s", job.id, job.attempts, self.me)
            return self._execute(job)

    def _execute(self, job: Claimed) -> str:
        try:
            with Heartbeat(self.sessions, job.id, self.me, self.settings.heartbeat_interval_s, self.runlog):
                if is_quantisation(job.params):  # an int8 version of a registered one (issue 20)
                    quantise(self, job)
                else:
                    self._train_and_register(job)
            return "succeeded"
        except Cancelled:
            log.info("job %s: cancelled", job.id)
            release(self.sessions, job.id, self.me, "cancelled", runlog=self.runlog)
            return "cancelled"
        except LeaseLost as e:
            log.warning("%s; stopping without touching it", e)
            return "skipped"
        except SoftTimeLimitExceeded:
            detail = ("the run took longer than the time limit "
                      f"(DLSERVE_TRAIN_SOFT_TIME_LIMIT_S={self.settings.train_soft_time_limit_s})")
            log.error("job %s: %s", job.id, detail)
            release(self.sessions, job.id, self.me, "failed", detail, runlog=self.runlog)
            return "failed"
        except Exception as e:
            log.exception("job %s failed", job.id)
            detail = e.detail if isinstance(e, DlserveError) else f"{type(e).__name__}: {e}"
            release(self.sessions, job.id, self.me, "failed", detail, runlog=self.runlog)
            return "failed"

    def _train_and_register(self, job: Claimed) -> None:
        contract = family(job.task)
        training = contract.training
        params, keys = job_keys.split(job.params)
        cfg = contract.config(**params)
        device = pick_device(self.settings.device)
        if self.settings.train_threads:
            torch.set_num_threads(self.settings.train_threads)
        data, dataset = self._load(job, training, cfg)

        resume = self._load_checkpoint(device)
        if keys.devices > 1:
            distributed.check(keys.devices, device, resume)
        init = self._init_weights(job, cfg, training) if resume is None else None
        start_step = resume["step"] if resume else 0
        forget_metrics_after(self.sessions, job.id, start_step)
        extra = {"device": str(device), "threads": torch.get_num_threads()}
        train = training.train
        if keys.devices > 1:  # torchrun's ranks (workers/distributed.py) train; this process follows them
            extra.update(devices=keys.devices, threads=distributed.threads_per_rank(keys.devices,
                                                                                    self.settings.train_threads))
            train = distributed.Launch(self.store.staging_dir / f"ddp-{job.id}", keys.devices, job.task,
                                       self.settings.families, self.data_path, self.data_format, extra["threads"])
        if resume:
            extra["resumed_from"] = {"epoch": resume["epoch"], "step": resume["step"]}
            log.info("job %s: resuming after epoch %d (step %d)", job.id, resume["epoch"], resume["step"])
        report = Reporter(self.sessions, job.id, self.me, total=training.total_steps(cfg, data), epochs=cfg.epochs,
                          batch_size=cfg.batch_size, interval_s=self.settings.progress_interval_s,
                          start_step=start_step, extra=extra, runlog=self.runlog)
        log.info("job %s: training %s on %s (%s threads): %d steps in %d epochs of batches of %d", job.id,
                 job.task, device, torch.get_num_threads(), report.total, cfg.epochs, cfg.batch_size)
        report.flush()
        started = time.monotonic()
        model, train_metrics = train(cfg, data, device, report, checkpoint=lambda s: self._save_checkpoint(s, report),
                               resume=resume, **({"init": init} if init is not None else {}))
        train_seconds = time.monotonic() - started
        log.info("job %s: trained in %.1f s; evaluating on the validation split", job.id, train_seconds)
        report.flush_patiently("evaluating", self.settings.heartbeat_timeout_s)

        final = training.evaluate(model, data, device)
        log.info("job %s: validation: %s", job.id, ", ".join(f"{k} {v:.4g}" for k, v in sorted(final.items())
                                                             if isinstance(v, int | float)))
        samples = (report.step - start_step) * cfg.batch_size
        metrics = {**run_metrics(train_metrics, final), "train_seconds": round(train_seconds, 3),
                   "train_samples_per_s": round(samples / train_seconds, 1) if train_seconds > 0 else None}
        report.latest.update({k: v for k, v in metrics.items() if v is not None})
        report.flush_patiently("exporting", self.settings.heartbeat_timeout_s)

        staged = self.store.staging_dir / f"run-{job.id}-{uuid.uuid4().hex}"
        self.store.ensure()
        try:
            log.info("job %s: exporting to ONNX and checking ONNX Runtime against PyTorch", job.id)
            model_file, extra_files, signature, parity = self._export(contract, model, staged, data)
            report.flush_patiently("registering", self.settings.heartbeat_timeout_s)
            metadata = {**training.version_metadata(cfg, data), "parity": parity, "config": asdict(cfg),
                        "dataset": {"id": dataset["id"], "name": dataset["name"], "sha256": dataset["sha256"]},
                        "weights": self._save_weights(job, model)}
            self._register(job, model_file, signature, metadata, metrics, report, extra_files)
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def _export(self, contract: Family, model: torch.nn.Module, folder: Path,
                data: Any) -> tuple[Path, dict[str, Path], dict[str, Any], dict[str, Any]]:
        """-> (model.onnx, the version's other files, signature, parity). An encoder-decoder family writes
        several files (encoder, decoder step, tokenizers) and checks its own decoding, greedy and beam,
        against PyTorch's; its signature is that of the whole decoder (token ids or images in, token ids
        and scores out), which is what V2 clients send and get."""
        folder.mkdir(parents=True)
        model_file = folder / MODEL_FILE
        training = contract.training
        if contract.multi_file:
            served = training.export_artifacts(model, folder, data)
            graphs = {f.name: inspect_here(f) for f in sorted(folder.glob("*.onnx"))}
            about = {k: v for k, v in graphs[MODEL_FILE].items() if k not in ("inputs", "outputs")}
            signature = {**about, **served, "graphs": {name: {"inputs": g["inputs"], "outputs": g["outputs"]}
                                                       for name, g in graphs.items()}}
            parity = training.check_parity(model, folder, data)
            return model_file, {f.name: f for f in folder.iterdir() if f.name != MODEL_FILE}, signature, parity
        training.export_onnx(model, model_file, data)
        signature = inspect_here(model_file)
        return model_file, {}, signature, self._parity(model, model_file, training.example_inputs(data, PARITY_BATCH))

    def _load(self, job: Claimed, training, cfg) -> tuple[Any, dict[str, str]]:
        with self.sessions() as session:
            dataset = session.get(Dataset, job.dataset_id) if job.dataset_id else None
            if dataset is None:
                raise RuntimeError("the job's dataset was deleted before the job could start")
            info = {"id": dataset.id, "name": dataset.name, "sha256": dataset.sha256}
        # outside the session: with an object store this downloads and unpacks, holding no connection
        path, fmt = dataset_path(self.store, dataset, self.settings), dataset.format
        self.store.pin(dataset.uri)
        self.data_path, self.data_format = path, fmt
        return training.load_dataset(path, fmt, cfg), info

    # -- weights: every trained version keeps its PyTorch state dict (runs/<id>/weights.pt, named in the
    # version's metadata.weights) so that a later job can start from it (config init_from). The ONNX file
    # is not a sound source: the exporter folds batch norm into convolutions and renames initialisers.
    def _save_weights(self, job: Claimed, model: torch.nn.Module) -> dict[str, str]:
        key = f"runs/{job.id}/weights.pt"
        file = self.store.path(key)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".{os.getpid()}.tmp")
        torch.save({k: v.detach().to("cpu") for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)},
                   tmp)
        os.replace(tmp, file)
        self.store.publish(key)
        return {"uri": key, "format": "torch-state-dict"}

    def _init_weights(self, job: Claimed, cfg, training) -> dict[str, torch.Tensor] | None:
        """config init_from -> a state dict: "name:3" / "name@alias" is a registered version of the same
        task trained here (its metadata.weights); a name ending .safetensors/.pt/.pth is a file in the
        dataset's archive (at its top, or inside its one enclosing folder). A family may start from
        versions of other tasks (config.INIT_FROM_TASKS: captioning from a classification backbone). The API
        made the same checks at submit (app/jobs/precheck.py); these catch what changed since."""
        ref = cfg.init_from if family(job.task).init_from_tasks else None
        if not ref:
            return None
        if is_weights_file(ref):
            folder = self.data_path
            if not folder.is_dir():
                raise InitFromError(f"init_from {ref!r}: the dataset is a single file; ship weights inside an "
                                    "archive dataset (imagefolder or csv), or name a registered version")
            file = weights_file(folder, ref)
            if file is None:
                raise InitFromError(f"init_from {ref!r}: the dataset's archive holds no such file")
        else:
            try:
                name, number, alias = registry_ref(ref)
            except ValueError as e:
                raise InitFromError(str(e)) from None
            with self.sessions() as session:
                try:
                    version = registry.resolve(session, name, number, alias)
                except DlserveError as e:
                    raise InitFromError(f"init_from {ref!r}: {e.detail}") from e
                task, weights = version.task, (version.meta or {}).get("weights") or {}
            accepted = family(job.task).init_from_tasks
            if task not in accepted:
                raise InitFromError(f"init_from {ref!r}: that is a {task} model; a {job.task} job starts from "
                                    f"{' or '.join(accepted)} versions")
            file = self.store.fetch_file(weights["uri"]) if weights.get("uri") else None
            if file is None:
                raise InitFromError(f"init_from {ref!r}: that version has no PyTorch weights (only versions "
                                    "trained by dlserve keep them; an uploaded ONNX file does not)")
        try:
            if file.name.lower().endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(str(file), device="cpu")
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as e:
            raise InitFromError(f"init_from {ref!r}: cannot read the weights ({type(e).__name__}: {e})") from e
        if not isinstance(state, dict):
            raise InitFromError(f"init_from {ref!r}: the file holds a {type(state).__name__}, not a state dict")
        return state

    # -- checkpoints: plain dicts, written to a temporary file and renamed, so a kill mid-write
    # leaves the previous checkpoint intact.
    def _save_checkpoint(self, state: dict[str, Any], report: Reporter) -> None:
        if not report.flush_for_checkpoint():
            return
        self.checkpoint_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_file.with_suffix(f".{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_file)
        self.store.publish(self.checkpoint_key)  # where any worker resumes from

    def _load_checkpoint(self, device: torch.device) -> dict[str, Any] | None:
        if self.store.fetch_file(self.checkpoint_key) is None:
            return None
        try:
            return torch.load(self.checkpoint_file, map_location=device, weights_only=True)
        except Exception:
            log.exception("job %s: checkpoint %s is unreadable; starting over", self.run_id, self.checkpoint_file)
            return None

    def _parity(self, model: torch.nn.Module, onnx_file: Path, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        """ONNX Runtime's outputs against PyTorch's on a held batch; beyond the tolerance the run fails."""
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        got = session.run(None, feeds)[0]
        model = model.to("cpu").eval()
        with torch.no_grad():
            want = model(*[torch.from_numpy(v) for v in feeds.values()]).numpy()
        atol, rtol = self.settings.parity_atol, self.settings.parity_rtol
        diff = float(np.max(np.abs(got - want))) if got.size else 0.0
        parity = {"max_abs_diff": diff, "atol": atol, "rtol": rtol, "batch": int(got.shape[0]),
                  "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider"}
        if got.shape != want.shape or not np.allclose(got, want, atol=atol, rtol=rtol):
            raise ParityError(f"ONNX Runtime and PyTorch disagree on a held batch of {parity['batch']}: "
                              f"max |difference| {diff:.3g} is beyond atol {atol:g} + rtol {rtol:g}")
        return parity

    def _register(self, job: Claimed, staged: Path, signature: dict[str, Any], metadata: dict[str, Any],
                  metrics: dict[str, Any], report: Reporter, extra_files: dict[str, Path]) -> None:
        sha256, size = _digest(staged)
        with self.sessions() as session:
            run = session.scalar(select(TrainingRun).where(TrainingRun.id == job.id).with_for_update())
            if run is None or run.worker != self.me or run.status != "running":
                raise LeaseLost(f"job {job.id} is no longer held by {self.me}")
            if run.cancel_requested:
                raise Cancelled(f"job {job.id} was cancelled")
            version = registry.register_version(
                session, self.store, name=job.register_as, task=job.task, staged_file=staged, sha256=sha256,
                size_bytes=size, signature=signature, metadata=metadata, metrics=metrics, run_id=job.id,
                dataset_id=job.dataset_id, extra_files=extra_files)
            try:
                if job.alias:
                    registry.set_alias(session, job.register_as, job.alias, version.version, f"job {job.id}")
                run.progress = {**report.progress("done"), "eta_s": 0}
                final = {k: v for k, v in metrics.items() if v is not None}
                run.latest_metrics = {**(run.latest_metrics or {}), **final}
                finish(run, "succeeded")
                log.info("job %s: registering %s version %d%s", job.id, job.register_as, version.version,
                         f" as {job.alias}" if job.alias else "")
                self.runlog.write(session)  # the log is whole when the run is seen to end
                session.commit()
            except BaseException:
                session.rollback()
                self.store.remove(version.artifact_uri)
                raise


def _digest(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size
