"""Training throughput through dlserve against the family's train loop called directly.

Same data (an MNIST subset as npz), same config, same machine. "dlserve" is the whole road: `dlserve
serve` (API + SQLite + file-system broker + one Celery worker), an HTTP upload, POST /v1/jobs, the
worker's progress reporting and per-epoch checkpoints. Two numbers come out of it:
  - train loop: samples/s over the worker's call of train() (with its reporting and checkpoints),
    the number the target (>= 0.95 of direct) is about;
  - end to end: samples/s from submission to `succeeded` (adds queueing, loading, evaluation,
    ONNX export, parity check and registration, which do not grow with the data).

    .venv/bin/python benchmarks/training.py [--n 20000] [--epochs 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
KEY = "bench-admin-key-0123456789"


def subset(path: Path, n: int) -> bytes:
    with np.load(path) as d:
        x, y = d["x_train"][:n], d["y_train"][:n]
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    return buf.getvalue()


def direct(npz: Path, config: dict) -> float:
    """samples/s of training.train() with a report callback that does nothing."""
    from models.classification import training
    from models.classification.config import Config

    cfg = Config(**config)
    data = training.load_dataset(npz, "npz", cfg)
    started = time.perf_counter()
    training.train(cfg, data, "cpu", lambda step, metrics: None)
    return len(data.train.y) * cfg.epochs / (time.perf_counter() - started)


class Server:
    def __init__(self, home: Path):
        from tests.live_server import free_port

        self.base = f"http://127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DLSERVE_")}
        env.update(DLSERVE_HOME=str(home), DLSERVE_ADMIN_KEY=KEY)
        self.log = home.parent / "serve.log"
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "dlserve"), "serve", "--port",
                                      self.base.rsplit(":", 1)[1]], env=env, stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.http = httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {KEY}"}, timeout=300)
        deadline = time.monotonic() + 120
        while " ready." not in self.log.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(self.log.read_text())
            time.sleep(0.2)

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=60)


def follow(server: Server, job_id: str, metrics: tuple[str, ...] = (), every_s: float = 5.0,
           quiet: bool = False) -> dict:
    """Polls a job until it ends and returns it; unless quiet, prints a line whenever its status, progress
    or the named metrics change. Every benchmark that trains through the API waits with this."""
    last = None
    while True:
        job = server.http.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        if not quiet:
            p, m = job.get("progress") or {}, job.get("metrics") or {}
            line = (f"  {job['status']:9s} {p.get('phase', '')} epoch {p.get('epoch')}/{p.get('epochs')} step "
                    f"{p.get('step')}/{p.get('total')} {p.get('samples_per_s')} samples/s eta {p.get('eta_s')} s"
                    + "".join(f"  {k} {m.get(k)}" for k in metrics))
            if line != last:
                print(line, flush=True)
                last = line
        time.sleep(every_s)


def through_dlserve(server: Server, dataset_id: str, config: dict, n_train: int) -> tuple[float, float]:
    job = server.http.post("/v1/jobs", json={"task": "classification", "dataset_id": dataset_id, "config": config,
                                             "register_as": "bench"}).raise_for_status().json()
    job = follow(server, job["id"], every_s=1.0, quiet=True)
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job['status']}: {job['error']}")
    created = datetime.fromisoformat(job["created_at"])
    finished = datetime.fromisoformat(job["finished_at"])
    train_loop = n_train * config["epochs"] / job["metrics"]["train_seconds"]
    return train_loop, n_train * config["epochs"] / (finished - created).total_seconds()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/mnist/mnist.npz")
    ap.add_argument("--n", type=int, default=20000, help="images from the start of x_train")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    config = {"epochs": args.epochs, "batch_size": args.batch_size}

    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "mnist-subset.npz"
        npz.write_bytes(subset(args.data, args.n))
        server = Server(Path(tmp) / "var")
        try:
            r = server.http.post("/v1/datasets", files={"file": (npz.name, npz.read_bytes())},
                                 data={"task": "classification"}).raise_for_status().json()
            n_train = args.n - round(args.n * 0.1)
            direct_runs, loop_runs, e2e_runs = [], [], []
            for i in range(args.repeat):  # interleaved, so drift in the machine hits both alike
                direct_runs.append(direct(npz, config))
                loop, e2e = through_dlserve(server, r["id"], config, n_train)
                loop_runs.append(loop)
                e2e_runs.append(e2e)
                print(f"run {i + 1}: direct {direct_runs[-1]:.0f}  dlserve train loop {loop:.0f}  "
                      f"dlserve end to end {e2e:.0f} samples/s", flush=True)
        finally:
            server.close()

    d, loop, e2e = (statistics.median(v) for v in (direct_runs, loop_runs, e2e_runs))
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
          f"date: {datetime.now().date()}")
    print(f"data: first {args.n} MNIST training images ({n_train} trained on), config {config}, device cpu")
    print(f"direct train():        {d:8.0f} samples/s")
    print(f"dlserve, train loop:   {loop:8.0f} samples/s  ({loop / d:.3f} of direct; target >= 0.95)")
    print(f"dlserve, end to end:   {e2e:8.0f} samples/s  ({e2e / d:.3f} of direct)")


if __name__ == "__main__":
    main()
