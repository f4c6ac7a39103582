"""Overhead benchmark (issue 20): what each server costs per request when the model costs nothing.

The model: y = x + 1 on four floats (ONNX, built here), one row per request. Each server runs alone on
this machine in turn, driven by one load generator (benchmarks/loadgen.py: closed-loop keep-alive
HTTP/1.1 connections over raw asyncio streams on uvloop, requests built in advance) at concurrency 1, 8,
32 and 128:

  dlserve V2         `dlserve serve --no-worker`, POST /v2/models/trivial/infer, V2 JSON
  dlserve task API   the same version, of the toy regression family (tests/toyfamily, registered with
                     DLSERVE_FAMILIES), POST /v1/models/trivial/predict {"inputs": [{"features": [...]}]}
  naive FastAPI      benchmarks/trivial_naive.py: a `def` endpoint running the session per request, V2 JSON
  BentoML            benchmarks/trivial_bento.py: @bentoml.api(batchable=True), BentoML's JSON, in .venv-bento
  Ray Serve          benchmarks/trivial_ray.py: a replica with @serve.batch behind Ray's HTTP proxy, V2
                     JSON, in .venv-ray (`ray[serve]`)

Per point: requests/s, p50 and p99 latency, and the server's CPU per request: utime + stime of every
process of the server (the tree started for it and anything else in its session: Ray's GCS, raylet,
proxy and replica; BentoML's supervisor and workers; dlserve's one process and its threads), read from
/proc before and after the run and divided by every answer in between (warm-up included). The load
generator's own CPU per request is shown beside it: on a small machine it shares the cores.

Triton Inference Server is not a row: it has no pip package (the server is a C++ program shipped as a
container image or built from source) and there is no container engine on the machines this runs on.
For scale, NVIDIA's Perf Analyzer quick start shows Triton serving its `simple` model (add and subtract
on two INT32[16] tensors) at 1,407.84 inferences/s at concurrency 1, about 0.71 ms a round trip, on
hardware it does not state (docs.nvidia.com: triton-inference-server, perf_analyzer/docs/quick_start).

Usage: python benchmarks/overhead.py [--duration 10] [--levels 1 8 32 128] [--only dlserve naive ...]
       [--bento-venv .venv-bento] [--ray-venv .venv-ray] [--json out.json] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import loadgen  # noqa: E402

KEY = "bench-admin-key-0123456789"
X = [0.5, -1.25, 3.0, 8.0]
Y = [x + 1 for x in X]
JSON = {"Content-Type": "application/json"}
V2_BODY = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": X}]}).encode()
SYSTEMS = ("dlserve", "naive", "bentoml", "ray")


def trivial_model(path: Path) -> None:
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "trivial",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def ort_alone_us(path: Path, runs: int = 20_000) -> float:
    """What ONNX Runtime itself takes per one-row run of the model, in-process: the floor under every row."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.asarray([X], np.float32)
    for _ in range(1000):
        sess.run(None, {"x": x})
    start = time.perf_counter()
    for _ in range(runs):
        sess.run(None, {"x": x})
    return (time.perf_counter() - start) / runs * 1e6


# -- the server's processes ----------------------------------------------------------------------------
def _processes() -> dict[int, tuple[int, int, float]]:
    """pid -> (parent pid, session id, CPU seconds so far) for every process on the machine."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        out[int(stat.parent.name)] = (int(fields[1]), int(fields[3]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def server_cpu(root: int) -> dict[int, float]:
    """CPU seconds of each process of the server started as `root` (in a session of its own): its
    descendants, and whatever else runs in its session (a daemon that re-parented itself to init)."""
    procs = _processes()
    members = {pid for pid, (_, sid, _) in procs.items() if sid == root} | {root}
    grew = True
    while grew:
        children = {pid for pid, (ppid, _, _) in procs.items() if ppid in members} - members
        grew = bool(children)
        members |= children
    return {pid: procs[pid][2] for pid in members if pid in procs}


@dataclass
class Target:
    label: str
    port: int
    path: str
    body: bytes
    headers: dict[str, str]
    check: Callable[[object], bool]  # the parsed answer -> whether it is y = x + 1


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env={**os.environ, **env}, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            cwd=ROOT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    pids = set(server_cpu(proc.pid))
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    time.sleep(1)
    for pid in pids & set(_processes()):  # anything of it that outlived its session leader
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(up: Callable[[], bool], proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if up():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server did not come up in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def measure(system: str, target: Target, proc: subprocess.Popen, args) -> list[dict]:
    answer = httpx.post(f"http://127.0.0.1:{target.port}{target.path}", content=target.body,
                        headers=target.headers, timeout=30)
    if answer.status_code != 200 or not target.check(answer.json()):
        raise RuntimeError(f"{target.label} answered {answer.status_code}: {answer.text[:300]}")
    reqs = loadgen.build_requests(target.path, [target.body], target.headers)
    loadgen.run("127.0.0.1", target.port, reqs, 8, warmup=0.5, duration=1)  # first batches, allocators
    rows = []
    for c in args.levels:
        before, client0 = server_cpu(proc.pid), _self_cpu()
        res = loadgen.run("127.0.0.1", target.port, reqs, c, warmup=args.warmup, duration=args.duration)
        after, client1 = server_cpu(proc.pid), _self_cpu()
        cpu_s = sum(t - before.get(pid, 0.0) for pid, t in after.items())
        answered = max(1, res.answered)
        row = {"system": system, "api": target.label, "concurrency": c, "requests_per_s": res.throughput,
               "p50_ms": res.p50_ms, "p99_ms": res.p99_ms, "server_cpu_ms": cpu_s * 1000 / answered,
               "client_cpu_ms": (client1 - client0) * 1000 / answered, "processes": len(after),
               "errors": sum(v for k, v in res.statuses.items() if k != 200)}
        print(f"  {target.label:<17} c={c:<4} {row['requests_per_s']:8.0f} req/s  p50 {row['p50_ms']:6.2f} ms  "
              f"p99 {row['p99_ms']:6.2f} ms  server CPU {row['server_cpu_ms']:.3f} ms/req ({len(after)} processes)"
              f"  client CPU {row['client_cpu_ms']:.3f} ms/req  errors {row['errors']}", flush=True)
        rows.append(row)
    return rows


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def v2_ok(answer) -> bool:
    return np.allclose(answer["outputs"][0]["data"], Y)


# -- the servers ---------------------------------------------------------------------------------------
def bench_dlserve(model: Path, work: Path, args) -> list[dict]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    h = {"Authorization": f"Bearer {KEY}"}
    proc = start([str(ROOT / ".venv/bin/dlserve"), "serve", "--port", str(port), "--no-worker"],
                 {"DLSERVE_HOME": str(work / "dlserve"), "DLSERVE_ADMIN_KEY": KEY, "PYTHONPATH": str(ROOT),
                  "DLSERVE_FAMILIES": "regression=tests.toyfamily"}, work / "dlserve.log")
    try:
        wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, proc, work / "dlserve.log")
        meta = json.dumps({"features": ["x1", "x2", "x3", "x4"]})
        httpx.post(f"{base}/v1/models/trivial/versions", headers=h, data={"task": "regression", "metadata": meta},
                   files={"file": ("m.onnx", model.read_bytes())}, timeout=60).raise_for_status()
        httpx.put(f"{base}/v1/models/trivial/aliases/production", headers=h, json={"version": 1}).raise_for_status()
        wait_for(lambda: httpx.get(f"{base}/v2/models/trivial/ready", headers=h).status_code == 200, proc,
                 work / "dlserve.log")
        task_body = json.dumps({"inputs": [{"features": X}]}).encode()
        return [*measure("dlserve", Target("dlserve V2", port, "/v2/models/trivial/infer", V2_BODY, {**JSON, **h},
                                           v2_ok), proc, args),
                *measure("dlserve", Target("dlserve task API", port, "/v1/models/trivial/predict", task_body,
                                           {**JSON, **h}, lambda a: abs(a["outputs"][0]["value"] - Y[0]) < 1e-6),
                         proc, args)]
    finally:
        stop(proc)


def bench_naive(model: Path, work: Path, args) -> list[dict]:
    port = free_port()
    proc = start([str(ROOT / ".venv/bin/uvicorn"), "benchmarks.trivial_naive:app", "--port", str(port),
                  "--log-level", "warning"], {"BENCH_MODEL": str(model)}, work / "naive.log")
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200, proc, work / "naive.log")
        return measure("naive", Target("naive FastAPI", port, "/v2/models/trivial/infer", V2_BODY, JSON, v2_ok),
                       proc, args)
    finally:
        stop(proc)


def bench_bento(model: Path, work: Path, args) -> list[dict]:
    bento = Path(args.bento_venv) / "bin" / "bentoml"
    if not bento.exists():
        print(f"  BentoML: skipped ({bento} not found; `make bench-overhead` creates it)")
        return []
    port = free_port()
    proc = start([str(bento), "serve", "benchmarks.trivial_bento:Trivial", "--port", str(port)],
                 {"BENCH_MODEL": str(model), "BENTOML_DO_NOT_TRACK": "true", "PYTHONPATH": str(ROOT)},
                 work / "bento.log")
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200, proc, work / "bento.log")
        body = json.dumps({"x": [X]}).encode()
        return measure("bentoml", Target("BentoML", port, "/infer", body, JSON, lambda a: np.allclose(a, [Y])),
                       proc, args)
    finally:
        stop(proc)


def bench_ray(model: Path, work: Path, args) -> list[dict]:
    python = Path(args.ray_venv) / "bin" / "python"
    if not python.exists():
        print(f"  Ray Serve: skipped ({python} not found; `make bench-overhead` creates it)")
        return []
    port = free_port()
    log = work / "ray.log"
    proc = start([str(python), "benchmarks/trivial_ray.py", str(port)],
                 {"BENCH_MODEL": str(model), "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}, log)
    try:
        wait_for(lambda: httpx.post(f"http://127.0.0.1:{port}/v2/models/trivial/infer", content=V2_BODY,
                                    headers=JSON, timeout=10).status_code == 200, proc, log)
        return measure("ray", Target("Ray Serve", port, "/v2/models/trivial/infer", V2_BODY, JSON, v2_ok),
                       proc, args)
    finally:
        stop(proc)


def markdown(rows: list[dict]) -> str:
    lines = ["| system | concurrency | requests/s | p50 ms | p99 ms | server CPU ms/request | "
             "load generator CPU ms/request | processes | errors |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['api']} | {r['concurrency']} | {r['requests_per_s']:.0f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r['server_cpu_ms']:.3f} | {r['client_cpu_ms']:.3f} | {r['processes']} | "
                     f"{r['errors']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds measured per point")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each point's measurement")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32, 128], help="concurrency levels")
    ap.add_argument("--only", nargs="+", choices=SYSTEMS, default=list(SYSTEMS), help="run only these servers")
    ap.add_argument("--bento-venv", default=str(ROOT / ".venv-bento"))
    ap.add_argument("--ray-venv", default=str(ROOT / ".venv-ray"))
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--markdown", help="also write the table here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dlserve-overhead-"))
    model = work / "trivial.onnx"
    trivial_model(model)
    floor = ort_alone_us(model)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, onnxruntime "
          f"{ort.__version__}; the model alone in ONNX Runtime: {floor:.1f} us per one-row run")
    runs = {"dlserve": bench_dlserve, "naive": bench_naive, "bentoml": bench_bento, "ray": bench_ray}
    rows: list[dict] = []
    for system in args.only:
        rows += runs[system](model, work, args)
    table = markdown(rows)
    print("\n" + table)
    results = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "onnxruntime": ort.__version__,
               "ort_alone_us": floor, "duration_s": args.duration, "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.markdown:
        Path(args.markdown).write_text(table)


if __name__ == "__main__":
    main()
