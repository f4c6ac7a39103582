"""Fraud-scoring quality through dlserve, on ../shared/datasets/creditcard/creditcard_sample.csv.

The benchmark carves its own test split first: 20 % of the frauds and 20 % of the legitimate rows
(seeded, stratified), never uploaded. The other 80 % is uploaded over HTTP and trained on by `dlserve
serve`'s worker (the job splits it again, 80/20 stratified, to pick the decision threshold). The held-out
rows are then scored through POST /v1/models/{name}/predict, and ROC-AUC and PR-AUC are computed here,
with each legitimate row weighted 284315/4920 = 57.79 so that PR-AUC and precision are those at the
full data's prevalence (492 frauds in 284807 rows).

    .venv/bin/python benchmarks/fraud.py [--archs mlp,hybrid,autoencoder,...] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
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

from benchmarks.training import Server, follow  # noqa: E402
from models.fraud import metrics as M  # noqa: E402

DATA = ROOT.parent / "shared/datasets/creditcard/creditcard_sample.csv"
NEG_WEIGHT = 284315 / 4920  # 57.79
ARCHS = "mlp,hybrid,autoencoder,deep_autoencoder,denoising_autoencoder,contractive_autoencoder"


def split(path: Path, fraction: float, seed: int) -> tuple[list[str], list[list[str]], list[list[str]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    y = np.array([int(float(r[header.index("Class")])) for r in body])
    rng = np.random.default_rng(seed)
    test = np.zeros(len(body), bool)
    for label in (0, 1):
        idx = rng.permutation(np.nonzero(y == label)[0])
        test[idx[:round(len(idx) * fraction)]] = True
    keep = [r for r, t in zip(body, test, strict=True) if not t]
    return header, keep, [r for r, t in zip(body, test, strict=True) if t]


def to_csv(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue().encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--archs", default=ARCHS)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    started = time.perf_counter()
    header, train_rows, test_rows = split(args.data, args.test_fraction, args.seed)
    li = header.index("Class")
    y_test = np.array([int(float(r[li])) for r in test_rows])
    print(f"data: {args.data.name}: {len(train_rows)} rows uploaded ({sum(int(float(r[li])) for r in train_rows)} "
          f"frauds), {len(test_rows)} held out ({int(y_test.sum())} frauds), stratified, seed {args.seed}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "var")
        try:
            ds = server.http.post("/v1/datasets", files={"file": ("creditcard-train.csv", to_csv(header, train_rows))},
                                  data={"task": "fraud"}).raise_for_status().json()
            for arch in args.archs.split(","):
                t0 = time.perf_counter()
                config = {"arch": arch, "negative_weight": round(NEG_WEIGHT, 4), "seed": args.seed}
                job = server.http.post("/v1/jobs", json={"task": "fraud", "dataset_id": ds["id"], "config": config,
                                                         "register_as": f"cc-{arch}".replace("_", "-"),
                                                         "alias": "production"}).raise_for_status().json()
                job = follow(server, job["id"], every_s=0.5, quiet=True)
                if job["status"] != "succeeded":
                    raise RuntimeError(f"{arch}: job {job['status']}: {job['error']}")
                name = job["model_version"]["name"]
                inputs = [{"features": {h: float(v) for h, v in zip(header, r, strict=True)
                                        if h not in ("Time", "Class")}} for r in test_rows]
                outs = []
                for s in range(0, len(inputs), 256):
                    r = server.http.post(f"/v1/models/{name}/predict", json={"inputs": inputs[s:s + 256]})
                    outs += r.raise_for_status().json()["outputs"]
                scores = np.array([o["score"] for o in outs])
                threshold = outs[0]["threshold"]
                at = M.at_threshold(y_test, scores, threshold, NEG_WEIGHT)
                row = {"arch": arch, "roc_auc": M.roc_auc(y_test, scores),
                       "pr_auc": M.pr_auc(y_test, scores, NEG_WEIGHT),
                       "pr_auc_sample": M.pr_auc(y_test, scores, 1.0), "threshold": threshold, **at,
                       "job_val_roc_auc": job["metrics"].get("val_roc_auc"),
                       "job_val_pr_auc": job["metrics"].get("val_pr_auc"), "seconds": time.perf_counter() - t0}
                results.append(row)
                print(f"{arch:24s} ROC-AUC {row['roc_auc']:.4f}  PR-AUC@natural {row['pr_auc']:.4f}  "
                      f"(sample {row['pr_auc_sample']:.4f})  at threshold {threshold:.4g}: precision@natural "
                      f"{row['precision']:.3f} recall {row['recall']:.3f} {row['confusion_matrix']}  "
                      f"[job's own val split: ROC-AUC {row['job_val_roc_auc']:.4f} PR-AUC {row['job_val_pr_auc']:.4f}]"
                      f"  {row['seconds']:.0f} s", flush=True)
        finally:
            server.close()
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
          f"date: {datetime.now().date()}; wall time {time.perf_counter() - started:.0f} s")
    print("targets: ROC-AUC >= 0.96, PR-AUC at natural prevalence >= 0.83")


if __name__ == "__main__":
    main()
