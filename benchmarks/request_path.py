"""Where the server's time goes per request on the hot paths (issue 20 item 4), with the model that costs
nothing (benchmarks/overhead.py's y = x + 1): V2 infer and the task API through the toy regression family.

Two measurements per path and concurrency, on `dlserve serve --no-worker` as it runs:

  calls   Python function calls per request on the event loop (cProfile, switched on and off by signals
          for the measured window only; deterministic, unlike timings on a shared machine), grouped by
          the package that owns the called function, and the request count from the middleware's calls.
  cpu     without the profiler: CPU milliseconds per request of the server's main thread (the event
          loop: HTTP, routing, middleware, JSON), of its other threads (ONNX Runtime and the batch
          thread) and of the load generator (this process), from /proc and getrusage.

Usage: python benchmarks/request_path.py [--paths v2 task] [--levels 1 32] [--duration 5] [--rounds 1]
       [--top 25] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import loadgen  # noqa: E402
from benchmarks.overhead import JSON, KEY, V2_BODY, X, free_port, trivial_model, wait_for  # noqa: E402

PATHS = {"v2": "/v2/models/trivial/infer", "task": "/v1/models/trivial/predict"}
BODIES = {"v2": V2_BODY, "task": json.dumps({"inputs": [{"features": X}]}).encode()}


# -- the server side: `dlserve serve` with a profiler that SIGUSR1 starts and SIGUSR2 stops and dumps ----
# A call's phase is the innermost of these functions on the stack when it is made (by code name, in a file
# whose path contains the fragment), the generic ones counting only where no other is on the stack.
SEP = os.sep
PROTOCOL = {"data_received", "handle_events", "send", "receive", "on_response_complete", "connection_made",
            "connection_lost", "on_message_begin", "on_url", "on_header", "on_headers_complete", "on_body",
            "on_message_complete", "_start_asgi_task", "_unset_keepalive_if_required", "send_500_response"}
PHASES = [("route matching", ("routing.py",),
           {"matches", "_match", "_match_low_priority", "effective_candidates", "_iter_low_priority_routes"}),
          ("dependencies", (f"fastapi{SEP}dependencies",), {"solve_dependencies"}),
          ("endpoint", (f"app{SEP}api",), {"infer", "infer_version", "predict", "predict_by_body"}),
          ("batcher", (f"app{SEP}inference{SEP}batcher.py",), None),
          ("response", (f"starlette{SEP}responses.py",), {"__call__", "__init__"}),
          ("HTTP protocol (h11/httptools, uvicorn)", (f"{SEP}h11{SEP}", f"app{SEP}server.py"), None),
          ("HTTP protocol (h11/httptools, uvicorn)", (f"protocols{SEP}http",), PROTOCOL),
          ("middleware", (f"app{SEP}middleware.py", f"app{SEP}uploads.py", f"app{SEP}dashboard{SEP}headers.py",
                          f"starlette{SEP}middleware"), None),
          ("FastAPI/Starlette request handling", (f"fastapi{SEP}", f"starlette{SEP}"), None)]
GENERIC = {"middleware", "FastAPI/Starlette request handling"}  # only where no other phase is on the stack


MIDDLEWARE = f"app{os.sep}middleware.py"


def _phase_tracer(counts: Counter):
    cache: dict = {}

    def phase(code) -> str | None:
        if code not in cache:
            cache[code] = next((name for name, files, funcs in PHASES
                                if any(f in code.co_filename for f in files)
                                and (funcs is None or code.co_name in funcs)), None)
        return cache[code]

    def tracer(frame, event, arg):
        if event not in ("call", "c_call"):
            return
        if event == "call" and frame.f_code.co_name == "__call__" and frame.f_code.co_filename.endswith(MIDDLEWARE):
            counts["requests"] += 1
        f, generic = frame, None
        while f is not None:
            p = phase(f.f_code)
            if p is not None:
                if p not in GENERIC:
                    counts[p] += 1
                    return
                generic = generic or p
            f = f.f_back
        counts[generic or "other (uvicorn's ASGI task)"] += 1

    return tracer


def serve_profiled(out: str) -> None:
    import cProfile

    state: dict = {"n": 0}

    def start(*_):  # the handler runs on the main thread, which runs the event loop
        if Path(f"{out}.phases").exists():
            state["phases"] = Counter()
            sys.setprofile(_phase_tracer(state["phases"]))
        else:
            state["prof"] = cProfile.Profile()
            state["prof"].enable()

    def stop(*_):
        if "phases" in state:
            sys.setprofile(None)
            Path(f"{out}.{state['n']}").write_text(json.dumps(state.pop("phases")))
        else:
            prof = state.pop("prof")
            prof.disable()
            prof.dump_stats(f"{out}.{state['n']}")
        state["n"] += 1

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    from app.cli import main

    sys.argv = ["dlserve", "serve", "--no-worker", "--port", os.environ["BENCH_PORT"]]
    main()


def group(filename: str) -> str:
    if filename == "~":
        return "builtins (C)"
    if f"{os.sep}site-packages{os.sep}" in filename:
        return filename.split(f"site-packages{os.sep}", 1)[1].split(os.sep, 1)[0].removesuffix(".py")
    if filename.startswith(str(ROOT)):
        rel = Path(filename).relative_to(ROOT)
        return str(rel.parent / rel.stem) if rel.parts[0] == "app" else rel.parts[0]
    return "python stdlib" if "python3" in filename else filename


def calls_per_request(path: str, top: int) -> dict:
    stats = pstats.Stats(path).stats  # (file, line, name) -> (primitive calls, calls, own s, cum s, callers)
    requests = sum(v[0] for k, v in stats.items() if k[0].endswith(MIDDLEWARE) and k[2] == "__call__")
    requests = max(requests, 1)
    by_group: Counter[str] = Counter()
    for (filename, _, _), v in stats.items():
        by_group[group(filename)] += v[1]
    total = sum(by_group.values())
    funcs = sorted(((v[1], f"{group(k[0])}:{k[2]}") for k, v in stats.items()), reverse=True)[:top]
    return {"requests": requests, "calls_per_request": total / requests,
            "groups": {g: round(n / requests, 1) for g, n in by_group.most_common()},
            "top": [(name, round(n / requests, 2)) for n, name in funcs]}


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds so far of (the main thread, every other thread) of process `pid`."""
    tick = os.sysconf("SC_CLK_TCK")
    main = rest = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / tick
        if int(task.name) == pid:
            main += cpu
        else:
            rest += cpu
    return main, rest


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_point(proc: subprocess.Popen, port: int, reqs: list[bytes], c: int, args, profile_out: str | None,
              phases: bool = False) -> dict:
    timers = []
    if profile_out is not None:
        Path(f"{args.work}/profile.phases").unlink(missing_ok=True)
        if phases:
            Path(f"{args.work}/profile.phases").touch()
        timers = [threading.Timer(args.warmup, os.kill, (proc.pid, signal.SIGUSR1)),
                  threading.Timer(args.warmup + args.duration, os.kill, (proc.pid, signal.SIGUSR2))]
    (m0, o0), client0 = thread_cpu(proc.pid), _self_cpu()
    for t in timers:
        t.start()
    res = loadgen.run("127.0.0.1", port, reqs, c, warmup=args.warmup, duration=args.duration)
    (m1, o1), client1 = thread_cpu(proc.pid), _self_cpu()
    n = max(1, res.answered)
    row = {"requests_per_s": res.throughput, "p50_ms": res.p50_ms, "p99_ms": res.p99_ms,
           "errors": sum(v for k, v in res.statuses.items() if k != 200),
           "loop_cpu_ms": (m1 - m0) * 1000 / n, "other_threads_cpu_ms": (o1 - o0) * 1000 / n,
           "loadgen_cpu_ms": (client1 - client0) * 1000 / n}
    if profile_out is not None:
        for t in timers:
            t.join()
        deadline = time.monotonic() + 10
        while not Path(profile_out).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)  # written, not just created
        if phases:
            counts = json.loads(Path(profile_out).read_text())
            requests = max(1, counts.pop("requests", 0))
            row.update({"requests": requests, "calls_per_request": sum(counts.values()) / requests,
                        "phases": {k: round(v / requests, 1) for k, v in Counter(counts).most_common()}})
        else:
            row.update(calls_per_request(profile_out, args.top))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS))
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds measured per point")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=1, help="cpu measurements per point (the calls: one)")
    ap.add_argument("--top", type=int, default=25, help="functions listed by calls per request")
    ap.add_argument("--no-profile", action="store_true", help="CPU only")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    work = args.work = Path(tempfile.mkdtemp(prefix="dlserve-request-path-"))
    model = work / "trivial.onnx"
    trivial_model(model)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    h = {"Authorization": f"Bearer {KEY}"}
    log = work / "dlserve.log"
    env = {**os.environ, "DLSERVE_HOME": str(work / "dlserve"), "DLSERVE_ADMIN_KEY": KEY, "PYTHONPATH": str(ROOT),
           "DLSERVE_FAMILIES": "regression=tests.toyfamily", "BENCH_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(work / "profile")], env=env, cwd=ROOT,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    rows = []
    try:
        wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, proc, log)
        meta = json.dumps({"features": ["x1", "x2", "x3", "x4"]})
        httpx.post(f"{base}/v1/models/trivial/versions", headers=h, data={"task": "regression", "metadata": meta},
                   files={"file": ("m.onnx", model.read_bytes())}, timeout=60).raise_for_status()
        httpx.put(f"{base}/v1/models/trivial/aliases/production", headers=h, json={"version": 1}).raise_for_status()
        wait_for(lambda: httpx.get(f"{base}/v2/models/trivial/ready", headers=h).status_code == 200, proc, log)
        n_profiles = 0
        for name in args.paths:
            reqs = loadgen.build_requests(PATHS[name], [BODIES[name]], {**JSON, **h})
            loadgen.run("127.0.0.1", port, reqs, 8, warmup=0.5, duration=1)
            for c in args.levels:
                kinds = [None] * args.rounds + ([] if args.no_profile else ["calls", "phases"])
                for kind in kinds:
                    out = f"{work / 'profile'}.{n_profiles}" if kind else None
                    row = {"path": name, "concurrency": c, "profiled": kind,
                           **run_point(proc, port, reqs, c, args, out, kind == "phases")}
                    n_profiles += kind is not None
                    rows.append(row)
                    print(_line(row), flush=True)
                    if kind == "calls":
                        print("    by package: " + ", ".join(f"{g} {n}" for g, n in row["groups"].items()))
                        print("    top: " + ", ".join(f"{f} {n}" for f, n in row["top"]), flush=True)
                    elif kind == "phases":
                        print("    by phase: " + ", ".join(f"{g} {n}" for g, n in row["phases"].items()))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def _line(r: dict) -> str:
    s = (f"{r['path']:<5} c={r['concurrency']:<4} {r['requests_per_s']:7.0f} req/s p50 {r['p50_ms']:6.2f} "
         f"p99 {r['p99_ms']:6.2f} ms | CPU ms/req: loop {r['loop_cpu_ms']:.3f}, other threads "
         f"{r['other_threads_cpu_ms']:.3f}, load generator {r['loadgen_cpu_ms']:.3f} | errors {r['errors']}")
    if r["profiled"]:
        s += (f" | {r['profiled'].upper()} (profiled): {r['calls_per_request']:.0f} Python calls/request over "
              f"{r['requests']} requests")
    return s


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve_profiled(sys.argv[2])
    else:
        main()
