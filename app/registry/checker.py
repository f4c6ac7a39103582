"""The process that checks uploaded models for the API (see app/registry/onnx_inspect.py for why).

One helper per API process, started on the first upload: `python -m app.registry.checker`, with onnx and
ONNX Runtime imported once. For each request (a JSON line on its stdin: path and timeout) it forks a child
that runs the checks and writes the answer to a pipe; the helper waits at most the timeout, kills a child
that overruns, and writes one JSON line back: {"signature": ...} or {"error": "..."}. The helper is single
threaded, so forking it is safe; a helper that died is started again on the next check.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

_helper: subprocess.Popen | None = None
_lock = threading.Lock()  # one check at a time per API process: uploads are rare, a check is short


def check(path: Path, timeout_s: float) -> dict[str, Any]:
    """{"signature": ...} or {"error": "field 'file': ..."} for the model at `path`."""
    global _helper
    request = json.dumps({"path": str(path), "timeout": timeout_s}) + "\n"
    with _lock:
        for _attempt in range(2):  # a helper that died since the last check is started again, once
            if _helper is None or _helper.poll() is not None:
                _helper = _start()
            try:
                _helper.stdin.write(request.encode())
                _helper.stdin.flush()
                line = _helper.stdout.readline()
            except (BrokenPipeError, OSError):
                line = b""
            if line:
                return json.loads(line)
            _helper.kill()
            _helper = None
        return {"error": "field 'file': the model could not be checked (the checker process failed to start)"}


def _start() -> subprocess.Popen:
    code_root = str(Path(__file__).resolve().parents[2])  # the helper imports this very code
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [code_root, os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "app.registry.checker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, start_new_session=True)


def _answer(path: str, timeout_s: float) -> dict[str, Any]:
    from app.errors import Unprocessable
    from app.registry.onnx_inspect import inspect_here

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: check, answer, exit without running the helper's cleanup
        os.close(read_end)
        try:
            answer = {"signature": inspect_here(Path(path))}
        except Unprocessable as e:  # ONNX Runtime's messages name the file it loaded: a server path
            answer = {"error": e.detail.replace(path, "the uploaded file")}
        except BaseException as e:  # noqa: BLE001 (anything else: still an answer, never a hang)
            answer = {"error": f"field 'file': the model could not be checked ({type(e).__name__})"}
        with os.fdopen(write_end, "wb") as out:
            out.write(json.dumps(answer).encode())
        os._exit(0)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + timeout_s
    with os.fdopen(read_end, "rb") as source:
        while (left := deadline - time.monotonic()) > 0:
            if select.select([source], [], [], left)[0]:
                chunk = os.read(source.fileno(), 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"error": f"field 'file': the model was not checked within {timeout_s:g} s "
                             "(DLSERVE_MODEL_CHECK_TIMEOUT_S)"}
    _, status = os.waitpid(pid, 0)
    if chunks and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return json.loads(b"".join(chunks))
    why = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit code {os.WEXITSTATUS(status)}"
    return {"error": f"field 'file': checking the model failed (the checker stopped with {why}); "
                     "is it a valid, self-contained ONNX file?"}


def main() -> None:
    import onnxruntime  # noqa: F401  (imported once here, so that every forked check starts with it)

    import app.registry.onnx_inspect  # noqa: F401

    for line in sys.stdin.buffer:
        request = json.loads(line)
        sys.stdout.buffer.write(json.dumps(_answer(request["path"], float(request["timeout"]))).encode() + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
