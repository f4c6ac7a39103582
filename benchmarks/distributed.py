"""Training throughput in one process and in several (config `devices`, issue 22), on the CPU.

The classification family's training on an MNIST subset, the same global batch and schedule each time:
  - one process with every core's threads (torch's default here),
  - one process with one thread per device (what each rank gets),
  - `devices` processes under torchrun (gloo), one thread each (OMP_NUM_THREADS), through the worker's
    launcher (workers/distributed.py) exactly as a job runs it, rank 0 reporting every step.
Two figures each: steady samples/s (from the first step's report to the last: the training loop) and
samples/s over the whole call (adds torchrun's start, each rank's import of torch and its loading of
the data, and the result handed back).

    .venv/bin/python benchmarks/distributed.py [--n 8000] [--epochs 2] [--batch-size 64] [--devices 2]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(npz: Path, config: dict, devices: int, threads: int) -> tuple[float, float]:
    """-> (steady samples/s, whole-call samples/s)."""
    import torch

    from app.settings import Settings
    from models import family, register_all
    from workers import distributed

    families = Settings(_env_file=None).families
    register_all(families)
    contract = family("classification")
    training = contract.training
    cfg = contract.config(**config)
    data = training.load_dataset(npz, "npz", cfg)
    seen: list[tuple[int, float]] = []

    def report(step: int, values: dict) -> None:
        if "loss" in values:
            seen.append((step, time.perf_counter()))

    torch.set_num_threads(threads)
    started = time.perf_counter()
    if devices == 1:
        training.train(cfg, data, torch.device("cpu"), report)
    else:
        with tempfile.TemporaryDirectory() as folder:
            launch = distributed.Launch(Path(folder) / "work", devices, "classification", families, npz, "npz", threads)
            launch(cfg, data, torch.device("cpu"), report)
    whole = time.perf_counter() - started
    (s0, t0), (s1, t1) = seen[0], seen[-1]
    batch = cfg.batch_size
    return (s1 - s0) * batch / (t1 - t0), len(seen) * batch / whole


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/mnist/mnist.npz")
    ap.add_argument("--n", type=int, default=8000, help="images from the start of x_train")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--devices", type=int, default=2)
    args = ap.parse_args()
    if not args.data.exists():
        args.data = Path("/work/shared/datasets/mnist/mnist.npz")
    config = {"epochs": args.epochs, "batch_size": args.batch_size}
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "mnist-subset.npz"
        with np.load(args.data) as d:
            buf = io.BytesIO()
            np.savez(buf, x=d["x_train"][:args.n], y=d["y_train"][:args.n])
        npz.write_bytes(buf.getvalue())
        rows = [(f"1 process, {cores} threads", 1, cores), ("1 process, 1 thread", 1, 1),
                (f"{args.devices} processes (torchrun, gloo), 1 thread each", args.devices, 1)]
        print(f"machine: {platform.machine()}, {cores} cores, {platform.platform()}; date: {datetime.now().date()}")
        print(f"data: first {args.n} MNIST training images, config {config}, cpu")
        for name, devices, threads in rows:
            steady, whole = run(npz, config, devices, threads)
            print(f"{name:45s} steady {steady:7.0f} samples/s   whole call {whole:7.0f} samples/s", flush=True)


if __name__ == "__main__":
    main()
