"""Recommendation quality through dlserve, on ../shared/datasets/movielens-100k.

(a) u1: `u1.base` uploaded over HTTP (format movielens) and trained on by `dlserve serve`'s worker;
    every pair of `u1.test` is then predicted through POST /v1/models/{name}/predict
    ({"user": u, "items": [...]}) and RMSE / MAE computed here. A test item the training file never
    saw (unknown to the model: the API answers 422) is predicted as the version's mean rating, and counted.
(b) the seed book's protocol: the users of u.data split 90/10 (seeded); only the 90 % are uploaded and
    trained on; for each test user, 20 % of their ratings (seeded) are hidden and the other 80 % sent as
    {"ratings": [...], "items": [hidden items]}: the model folds the new user in, without retraining,
    and predicts the hidden ratings. MSE is on ratings divided by 5 (the RBM's [0, 1] scale).

    .venv/bin/python benchmarks/recommendation.py [--archs bpmf,mf,rbm] [--seed 0] [--threads 1]

bpmf runs the family's default config (no keys), the others name their arch.
"""

from __future__ import annotations

import argparse
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

DATA = ROOT.parent / "shared/datasets/movielens-100k"
CONFIGS = {"bpmf": {}, "mf": {"arch": "mf"},
           "rbm": {"arch": "rbm", "epochs": 20, "hidden": 100, "batch_size": 32, "lr": 0.1}}


def train(server: Server, content: bytes, filename: str, config: dict, name: str) -> dict:
    ds = server.http.post("/v1/datasets", files={"file": (filename, content)},
                          data={"task": "recommendation"}).raise_for_status().json()
    job = server.http.post("/v1/jobs", json={"task": "recommendation", "dataset_id": ds["id"], "config": config,
                                             "register_as": name, "alias": "production"}).raise_for_status().json()
    job = follow(server, job["id"], every_s=0.5, quiet=True)
    if job["status"] != "succeeded":
        raise RuntimeError(f"{name}: job {job['status']}: {job['error']}")
    return job


def predict(server: Server, name: str, inputs: list[dict]) -> list[dict]:
    outs = []
    for s in range(0, len(inputs), 64):
        r = server.http.post(f"/v1/models/{name}/predict", json={"inputs": inputs[s:s + 64]})
        outs += r.raise_for_status().json()["outputs"]
    return outs


def u1(server: Server, arch: str, config: dict) -> dict:
    base = (DATA / "u1.base").read_bytes()
    test = np.loadtxt(DATA / "u1.test", dtype=np.int64)
    job = train(server, base, "u1.base", config, f"u1-{arch}")
    version = server.http.get(f"/v1/models/u1-{arch}/versions/1").raise_for_status().json()
    users, items = set(version["metadata"]["users"]), set(version["metadata"]["items"])
    mean = version["metadata"]["mean_rating"]
    pred = np.full(len(test), mean)
    known = np.array([str(u) in users and str(i) in items for u, i in test[:, :2]])
    by_user: dict[int, list[int]] = {}
    for k in np.nonzero(known)[0]:
        by_user.setdefault(int(test[k, 0]), []).append(k)
    order = list(by_user)
    outs = predict(server, f"u1-{arch}", [{"user": u, "items": [int(test[k, 1]) for k in by_user[u]]} for u in order])
    for u, out in zip(order, outs, strict=True):
        for k, p in zip(by_user[u], out["ratings"], strict=True):
            pred[k] = p["rating"]
    err = pred - test[:, 2]
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))),
            "rmse_known_only": float(np.sqrt(np.mean(err[known] ** 2))), "unknown_pairs": int((~known).sum()),
            "pairs": len(test), "job": job["metrics"]}


def book(server: Server, arch: str, config: dict, seed: int) -> dict:
    data = np.loadtxt(DATA / "u.data", dtype=np.int64)
    rng = np.random.default_rng(seed)
    users = np.unique(data[:, 0])
    test_users = set(rng.choice(users, round(len(users) * 0.1), replace=False).tolist())
    is_test = np.array([u in test_users for u in data[:, 0]])
    train_rows = data[~is_test]
    content = "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in train_rows).encode()
    job = train(server, content, "u.data", config, f"book-{arch}")
    version = server.http.get(f"/v1/models/book-{arch}/versions/1").raise_for_status().json()
    items = set(version["metadata"]["items"])
    inputs, truth = [], []
    for u in sorted(test_users):
        rows = data[data[:, 0] == u]
        rows = rows[np.isin(rows[:, 1].astype(str), list(items))]
        hide = rng.permutation(len(rows))[:round(len(rows) * 0.2)]
        shown = np.setdiff1d(np.arange(len(rows)), hide)
        if len(hide) == 0 or len(shown) == 0:
            continue
        inputs.append({"ratings": [{"item": int(rows[k, 1]), "rating": int(rows[k, 2])} for k in shown],
                       "items": [int(rows[k, 1]) for k in hide]})
        truth.append(rows[hide, 2])
    outs = predict(server, f"book-{arch}", inputs)
    pred = np.concatenate([[p["rating"] for p in o["ratings"]] for o in outs])
    true = np.concatenate(truth).astype(np.float64)
    return {"mse_scaled": float(np.mean((pred / 5 - true / 5) ** 2)),
            "rmse": float(np.sqrt(np.mean((pred - true) ** 2))),
            "hidden_ratings": len(true), "test_users": len(inputs), "train_ratings": len(train_rows),
            "baseline_mse_scaled": float(np.mean((true / 5 - version["metadata"]["mean_rating"] / 5) ** 2)),
            "job": job["metrics"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", default="bpmf,mf,rbm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the worker (OMP_NUM_THREADS)")
    args = ap.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "var")
        try:
            for arch in args.archs.split(","):
                t0 = time.perf_counter()
                a = u1(server, arch, CONFIGS[arch])
                j = a["job"]
                print(f"{arch} u1: config {CONFIGS[arch]}: RMSE on u1.test {a['rmse']:.4f} (target <= 0.91), "
                      f"MAE {a['mae']:.4f}; {a['unknown_pairs']} of {a['pairs']} pairs have an item u1.base lacks "
                      f"(predicted as the mean; RMSE without them {a['rmse_known_only']:.4f}); job's own held-out: "
                      f"RMSE {j['val_rmse']:.4f} MAE {j['val_mae']:.4f} HR@10 {j['val_hr_at_10']:.4f} "
                      f"NDCG@10 {j['val_ndcg_at_10']:.4f}; {time.perf_counter() - t0:.0f} s", flush=True)
                t0 = time.perf_counter()
                b = book(server, arch, CONFIGS[arch], args.seed)
                print(f"{arch} book protocol: MSE on ratings/5 {b['mse_scaled']:.4f} (target <= 0.035; the mean "
                      f"rating scores {b['baseline_mse_scaled']:.4f}), RMSE {b['rmse']:.4f}, {b['hidden_ratings']} "
                      f"hidden ratings of {b['test_users']} new users folded in; {time.perf_counter() - t0:.0f} s",
                      flush=True)
        finally:
            server.close()
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
          f"date: {datetime.now().date()}; wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
