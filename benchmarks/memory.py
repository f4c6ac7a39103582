"""Resident memory of the API process with one production model of each of the six families loaded.

Through `dlserve serve` on a fresh DLSERVE_HOME (SQLite, file-system broker, one worker): one small
dataset per family is uploaded and trained for one epoch with the family's DEFAULT config (so the
networks have their default sizes; their quality is beside the point here) and aliased production.
The server is then restarted, so that the API process holds only what serving needs: it loads and
warms the six production versions before /readyz turns 200. One request per family follows, and the
API process's VmRSS / VmHWM are read from /proc (the worker is another process and is not counted),
with each model's own share from /metrics and whether libtorch is mapped into the process.

    .venv/bin/python benchmarks/memory.py [--json var/bench-memory.json]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import platform
import re
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.training import Server, follow  # noqa: E402

SHARED = ROOT.parent / "shared/datasets"
LIMIT_MIB = 1.5 * 1024


def _png(img: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def datasets() -> dict[str, dict]:
    """Per family: the upload, the one-epoch config and one request's inputs."""
    from benchmarks.detection import mnist_coco_zip
    from models.captioning import synthetic

    mnist = np.load(SHARED / "mnist/mnist.npz")
    buf = io.BytesIO()
    np.savez(buf, x=mnist["x_train"][:2000], y=mnist["y_train"][:2000])
    digit = _png(mnist["x_test"][0])

    m30k = io.BytesIO()
    with tarfile.open(fileobj=m30k, mode="w:gz") as t:
        for split, n in (("train", 3000), ("val", 100)):
            for lang in ("de", "en"):
                lines = (SHARED / f"multi30k/{split}.{lang}").read_bytes().splitlines(keepends=True)[:n]
                info = tarfile.TarInfo(f"multi30k/{split}.{lang}")
                info.size = sum(len(x) for x in lines)
                t.addfile(info, io.BytesIO(b"".join(lines)))

    canvases, captions = synthetic.canvases(300, "mnist", 64, seed=0)
    canvas = _png(synthetic.canvases(1, "mnist", 64, seed=99)[0][0])

    card = (SHARED / "creditcard/creditcard_sample.csv").read_text().splitlines()
    header, row = card[0].split(","), card[1].split(",")
    record = {k: float(v) for k, v in zip(header, row, strict=True) if k not in ("Time", "Class")}

    return {
        "classification": {"file": ("mnist-2000.npz", buf.getvalue()), "config": {"epochs": 1},
                           "inputs": [{"image": digit}]},
        "detection": {"file": ("digits.zip", mnist_coco_zip(200, 50)), "format": "coco",
                      "config": {"epochs": 1}, "inputs": [{"image": digit}]},
        "fraud": {"file": ("creditcard.csv", "\n".join(card).encode()), "config": {"epochs": 1},
                  "inputs": [{"features": record}]},
        "recommendation": {"file": ("u1.base", (SHARED / "movielens-100k/u1.base").read_bytes()),
                           "format": "movielens",
                           # bpmf's default keeps 50 draws: 60 sweeps keep as many as 600 do
                           "config": {"epochs": 60, "burn_in": 10},
                           "inputs": [{"user": 1, "k": 10}, {"ratings": [{"item": 50, "rating": 5}], "k": 10}]},
        "translation": {"file": ("multi30k-3000.tar.gz", m30k.getvalue()), "format": "parallel",
                        "config": {"epochs": 1, "source_lang": "de", "target_lang": "en"},
                        "inputs": [{"text": "Ein Mann fährt Fahrrad."}], "parameters": {"beam_size": 4}},
        "captioning": {"file": ("canvases.zip", synthetic.coco_archive(canvases, captions)), "format": "coco",
                       "config": {"epochs": 1}, "inputs": [{"image": canvas}], "parameters": {"beam_size": 3}},
    }


def status_kib(pid: int) -> dict[str, int]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: int(re.search(rf"^{k}:\s+(\d+) kB", text, re.M).group(1)) for k in ("VmRSS", "VmHWM")}


def torch_mapped(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    started = time.monotonic()
    work = datasets()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "var"
        server = Server(home)
        try:
            jobs = {}
            for task, w in work.items():
                data = {"task": task, **({"format": w["format"]} if "format" in w else {})}
                ds = server.http.post("/v1/datasets", files={"file": w["file"]}, data=data)
                if ds.status_code != 201:
                    raise RuntimeError(f"{task} upload: {ds.status_code} {ds.text[:500]}")
                job = server.http.post("/v1/jobs", json={"task": task, "dataset_id": ds.json()["id"],
                                                         "config": w["config"], "register_as": task,
                                                         "alias": "production"}).raise_for_status().json()
                jobs[task] = job["id"]
            for task, job_id in jobs.items():
                job = follow(server, job_id, every_s=1.0, quiet=True)
                print(f"{task}: job {job['status']} {job.get('error') or ''}", flush=True)
                if job["status"] != "succeeded":
                    raise RuntimeError(f"{task}: {job['error']}")
        finally:
            server.close()

        server = Server(home)  # a fresh API process: only what serving needs
        try:
            t0 = time.monotonic()
            while server.http.get("/readyz").status_code != 200:
                time.sleep(0.2)
            ready_s = time.monotonic() - t0
            pid = server.proc.pid
            at_ready = status_kib(pid)
            answers = {}
            for task, w in work.items():
                body = {"inputs": w["inputs"], **({"parameters": w["parameters"]} if "parameters" in w else {})}
                r = server.http.post(f"/v1/models/{task}/predict", json=body)
                if r.status_code != 200:
                    raise RuntimeError(f"{task} predict: {r.status_code} {r.text[:500]}")
                answers[task] = r.json()["outputs"][0]
            after = status_kib(pid)
            metrics = server.http.get("/metrics").text
            per_model = {m[0]: round(float(m[1]) / 2**20, 1) for m in re.findall(
                r'dlserve_model_memory_bytes\{model="([^"]+)",version="\d+"\} ([0-9.e+]+)', metrics)}
            result = {
                "rss_mib_at_ready": round(at_ready["VmRSS"] / 1024, 1),
                "rss_mib_after_requests": round(after["VmRSS"] / 1024, 1),
                "peak_rss_mib": round(after["VmHWM"] / 1024, 1), "limit_mib": LIMIT_MIB,
                "libtorch_mapped": torch_mapped(pid), "ready_after_restart_s": round(ready_s, 1),
                "per_model_mib": per_model, "answers": answers,
                "machine": f"{platform.machine()}, {platform.system()} {platform.release()}",
                "wall_s": round(time.monotonic() - started, 1),
            }
        finally:
            server.close()
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
