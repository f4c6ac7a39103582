"""A job of several devices (config `devices`, issue 22): the family's training in `devices` processes
under torchrun, gloo on the CPU and NCCL on GPUs, driven from the worker's task process.

`Launch(...)` is a drop-in for a family's `train` in workers/runner.py: the runner hands it the same
report and checkpoint callbacks and gets the same (module, metrics) back, so progress, checkpoints,
evaluation, export, parity and registration stay where they are. Between the two:

- the worker writes a work folder: spec.json (task, config, dataset, device, threads), resume.pt and
  init.pt where the run has them; torchrun starts `devices` ranks (models/common/ddp.py: each trains on
  its shard of every global batch, gradients averaged);
- rank 0 alone appends its reports and the names of its checkpoints to events.jsonl; the worker follows
  that file and calls the runner's report (which writes progress and metrics and raises on a cancel or a
  lost lease) and checkpoint (which stores it as a one-process checkpoint is stored, with world_size);
- rank 0 ends by writing result.pt (the module and the metrics); a rank that fails writes its error to
  rank<N>.error, torchrun stops the others and the job fails with that rank's error;
- whatever ends the wait (a cancel, a lost lease, the soft time limit, a failure) ends with `_stop`: each
  rank's process group killed and torchrun stopped and waited for, so no process is left behind. Ranks
  and torchrun also die with their parent (workers/ddp_entry.py) should the worker itself be killed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("dlserve.worker")
POLL_S = 0.05
DONE_WAIT_S = 1.0
PROJECT = Path(__file__).resolve().parents[1]


class DistributedError(RuntimeError):
    pass


def host_devices(device: torch.device) -> tuple[int, str]:
    """How many processes this worker can give one device each: GPUs on CUDA, else CPU cores."""
    if device.type == "cuda":
        return torch.cuda.device_count(), "CUDA devices"
    return len(os.sched_getaffinity(0)), "CPU cores"


def check(devices: int, device: torch.device, resume: dict[str, Any] | None) -> None:
    """Before anything starts: the host has the devices, and a checkpoint was written by as many ranks (the
    shards, hence the order of the examples, depend on it: a run resumed on another number is another run)."""
    have, what = host_devices(device)
    if devices > have:
        raise DistributedError(f"config.devices is {devices} but this worker has {have} {what} "
                               f"(it trains on {device.type}); ask for at most {have}, or run the job on a "
                               "bigger worker")
    written = resume.get("world_size", 1) if resume is not None else devices
    if written != devices:
        raise DistributedError(f"the job's checkpoint was written by {written} process(es) and the job asks for "
                               f"{devices}: it cannot resume on another number; resubmit it to start over")


def threads_per_rank(devices: int, setting: int | None) -> int:
    """Each rank's share of the worker's threads (DLSERVE_TRAIN_THREADS, else its cores): ranks that each
    took every core would fight over them."""
    return max(1, (setting or len(os.sched_getaffinity(0))) // devices)


class Launch:
    def __init__(self, folder: Path, devices: int, task: str, families: str, data_path: Path, fmt: str,
                 threads: int):
        """`folder`: the run's work folder (emptied first: an attempt killed with its worker leaves one)."""
        self.folder, self.devices, self.task, self.families, self.threads = folder, devices, task, families, threads
        self.data_path, self.fmt = data_path, fmt

    def __call__(self, cfg, data, device: torch.device, report, checkpoint=None, resume=None, init=None):
        from dataclasses import asdict

        folder = self.folder
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            (folder / "spec.json").write_text(json.dumps({
                "task": self.task, "families": self.families, "config": asdict(cfg), "data": str(self.data_path),
                "format": self.fmt, "device": device.type, "threads": self.threads}))
            if resume is not None:
                torch.save(resume, folder / "resume.pt")
            if init is not None:
                torch.save(init, folder / "init.pt")
            proc = self._start(folder)
            try:
                rc = _follow(proc, folder, report, checkpoint)
            finally:
                _stop(proc, folder)
            if rc != 0:
                raise DistributedError(_why(folder, rc, self.devices))
            result = torch.load(folder / "result.pt", map_location=device, weights_only=False)  # our own rank's
            return result["model"], result["metrics"]
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _start(self, folder: Path) -> subprocess.Popen:
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "workers.ddp_entry", "launch", "--standalone", "--nnodes=1",
                   f"--nproc-per-node={self.devices}", "--max-restarts=0", "--monitor-interval=0.2",
                   "-m", "workers.ddp_entry", "rank", str(folder)]
        log.info("training in %d processes (torchrun, %d thread(s) each)", self.devices, self.threads)
        with open(folder / "torchrun.log", "wb") as out:
            # a session of its own: killed as a group, never by a signal meant for the worker's
            return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder,
                                    start_new_session=True)


def _follow(proc: subprocess.Popen, folder: Path, report, checkpoint) -> int:
    """Rank 0's events into the runner's callbacks until torchrun exits; -> its exit status."""
    events, offset, partial = folder / "events.jsonl", 0, b""
    while True:
        rc = proc.poll()
        if events.exists():
            with open(events, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            *lines, partial = (partial + chunk).split(b"\n")
            for line in lines:
                event = json.loads(line)
                if "report" in event:
                    report(*event["report"])
                elif "checkpoint" in event and checkpoint is not None:
                    file = folder / event["checkpoint"]
                    checkpoint(torch.load(file, map_location="cpu", weights_only=True))
                    file.unlink()
                elif "done" in event:  # result.pt is whole; the ranks' and torchrun's way out takes seconds
                    return _wait(proc, DONE_WAIT_S)
        if rc is not None:
            return rc
        time.sleep(POLL_S)


def _wait(proc: subprocess.Popen, seconds: float) -> int:
    """After rank 0's result: a moment for torchrun to end by itself (_stop ends it otherwise). A rank that
    fails on its way out changes nothing: the result is whole."""
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass
    return 0


def _stop(proc: subprocess.Popen, folder: Path) -> None:
    """Every rank's process group killed while torchrun still runs (so that it reaps them), then torchrun
    stopped and waited for."""
    if proc.poll() is None:
        for pid_file in folder.glob("rank*.pid"):
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)  # each rank leads a session of its own
            except (ProcessLookupError, PermissionError, ValueError):
                pass
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
    proc.wait()


def _why(folder: Path, rc: int, devices: int) -> str:
    """A rank that died without a word (killed: out of memory, a signal) first, for the others' errors are then
    only that a peer went away; else the first rank's error to be written; else the end of torchrun's log."""
    started = {f.stem.removeprefix("rank") for f in folder.glob("rank*.pid")}
    errors = sorted(folder.glob("rank*.error"), key=lambda f: f.stat().st_mtime)
    ended = {f.stem.removeprefix("rank") for pattern in ("rank*.stopped", "rank*.done") for f in folder.glob(pattern)}
    silent = sorted(started - ended - {f.stem.removeprefix("rank") for f in errors}, key=int)
    if silent:  # the peers may have written an error (a peer went away) or been stopped by torchrun first
        cause = (f"rank {silent[0]} of {devices} died without an error of its own (killed: out of memory, or a "
                 f"signal)")
        return f"{cause}; then rank {errors[0].stem.removeprefix('rank')}: {errors[0].read_text().strip()}" \
            if errors else cause
    if errors:
        rank = errors[0].stem.removeprefix("rank")
        return f"rank {rank} of {devices} failed: {errors[0].read_text().strip()}"
    text = (folder / "torchrun.log").read_text(errors="replace") if (folder / "torchrun.log").exists() else ""
    tail = " | ".join(line.strip() for line in text.splitlines()[-6:] if line.strip())
    return f"the training processes (torchrun) exited with status {rc}: {tail[-1500:]}"


# -- in each rank (python -m workers.ddp_entry rank <folder>) --

def rank_main(folder: Path) -> None:
    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])

    def stopped(signum, frame):  # torchrun stops the others when one fails: they are not the cause (_why)
        (folder / f"rank{rank}.stopped").touch()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stopped)  # before the pid file: a started rank always says how it ended
    (folder / f"rank{rank}.pid").write_text(str(os.getpid()))
    try:
        _train(folder, rank, local)
        (folder / f"rank{rank}.done").touch()  # a rank that ended well is never the one that died (_why)
    except BaseException as e:
        (folder / f"rank{rank}.error").write_text(f"{type(e).__name__}: {e}"[:4000])
        traceback.print_exc()
        raise


def _train(folder: Path, rank: int, local: int) -> None:
    import torch.distributed as dist

    from models import family, register_all

    spec = json.loads((folder / "spec.json").read_text())
    register_all(spec["families"])
    training = family(spec["task"]).training
    cfg = family(spec["task"]).config(**spec["config"])
    device = torch.device("cpu")
    if spec["device"] == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    torch.set_num_threads(spec["threads"])
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        data = training.load_dataset(Path(spec["data"]), spec["format"], cfg)
        resume = torch.load(folder / "resume.pt", map_location=device, weights_only=True) \
            if (folder / "resume.pt").exists() else None
        init = torch.load(folder / "init.pt", map_location="cpu", weights_only=True) \
            if (folder / "init.pt").exists() else None
        events = open(folder / "events.jsonl", "a", buffering=1) if rank == 0 else None
        model, metrics = training.train(cfg, data, device, _Reports(events), checkpoint=_Checkpoints(folder, events)
                                        if events else None, resume=resume, **({"init": init} if init else {}))
        if rank == 0:
            tmp = folder / "result.pt.tmp"
            torch.save({"model": model, "metrics": metrics}, tmp)
            os.replace(tmp, folder / "result.pt")
            events.write(json.dumps({"done": True}) + "\n")
            events.close()
    finally:
        dist.destroy_process_group()


class _Reports:
    """Rank 0's reports, one JSON line each (the other ranks report nothing)."""

    def __init__(self, events):
        self.events = events

    def __call__(self, step: int, values: dict[str, float]) -> None:
        if self.events is not None:
            self.events.write(json.dumps({"report": [step, values]}) + "\n")


class _Checkpoints:
    def __init__(self, folder: Path, events):
        self.folder, self.events, self.count = folder, events, 0

    def __call__(self, state: dict[str, Any]) -> None:
        self.count += 1
        name = f"checkpoint-{self.count}.pt"
        torch.save(state, self.folder / f"{name}.tmp")
        os.replace(self.folder / f"{name}.tmp", self.folder / name)
        self.events.write(json.dumps({"checkpoint": name}) + "\n")
