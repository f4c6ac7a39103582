"""Memory and disk bounds of uploads, measured on a real server process: its peak RSS growth (VmHWM after
resetting it through /proc/<pid>/clear_refs) while a big dataset streams in chunked, while a model is
checked, and while bombs are refused; and no file of an upload is ever open outside DLSERVE_HOME (the
server's TMPDIR is a folder of the test's, watched through /proc/<pid>/fd while the upload runs)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from app.db import migrate
from tests import hostile, onnx_models
from tests.conftest import ADMIN_KEY
from tests.live_server import free_port

MIB = 1024 * 1024
# The 500 MB case takes a few seconds here; DLSERVE_TEST_BIG_UPLOAD_MB makes it bigger or smaller.
BIG_UPLOAD = int(os.environ.get("DLSERVE_TEST_BIG_UPLOAD_MB", "500")) * 1000 * 1000
BOUNDARY = "dlserve-test-boundary"

pytestmark = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")


class Server:
    def __init__(self, home: Path, tmpdir: Path):
        self.home, self.tmpdir = home, tmpdir
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        # Not inherited from this process (which imported app and so set it): the server must turn ONNX
        # Runtime's telemetry off by itself. HOME is a folder of the test's, to see nothing lands there.
        env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
        env |= {"DLSERVE_HOME": str(home), "DLSERVE_ADMIN_KEY": ADMIN_KEY, "TMPDIR": str(tmpdir),
                "HOME": str(tmpdir.parent / "user-home"), "XDG_CACHE_HOME": "",
                "DLSERVE_DATABASE_URL": f"sqlite:///{home / 'dlserve.db'}", "DLSERVE_REAPER_INTERVAL_S": "0"}
        self.proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
                                      "--port", str(port), "--http", "h11", "--log-level", "warning"], env=env)
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.http.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    def measure(self, call) -> tuple[object, int, set[str]]:
        """(call's result, peak RSS growth in bytes, files open outside DLSERVE_HOME meanwhile)."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        base = self._status("VmRSS")
        outside: set[str] = set()
        done = threading.Event()

        def watch():
            home = str(self.home.resolve())
            while not done.is_set():
                for fd in Path(f"/proc/{self.proc.pid}/fd").iterdir():
                    try:
                        target = os.readlink(fd)
                    except OSError:
                        continue
                    # Anything in the server's TMPDIR, and anything else outside home over a megabyte (the
                    # libraries it maps aside).
                    if not target.startswith("/") or target.startswith(("/dev/", "/proc/", home)):
                        continue
                    try:
                        size = os.stat(fd).st_size
                    except OSError:
                        continue
                    if target.startswith(str(self.tmpdir)) or (size > MIB and not target.endswith(".so")):
                        outside.add(target)
                done.wait(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            result = call()
        finally:
            done.set()
            watcher.join()
        return result, self._status("VmHWM") - base, outside

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home, tmpdir = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("systmp")
    migrate.upgrade(f"sqlite:///{home / 'dlserve.db'}")
    s = Server(home, tmpdir)
    yield s
    s.stop()
    # Nothing of the server's in the system temp folder: no upload spool, and no ONNX Runtime telemetry
    # session file (.ses), which dlserve turns off (app/__init__.py).
    assert [p.name for p in tmpdir.iterdir()] == []
    user_home = tmpdir.parent / "user-home"
    assert not user_home.exists() or [str(p) for p in user_home.rglob("*")] == []


def _multipart(fields: dict[str, str], filename: str, size: int, chunk: bytes = b"x" * MIB):
    """A multipart body generated on the fly (sent chunked: no Content-Length), `size` bytes of file."""
    for k, v in fields.items():
        yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
           "Content-Type: application/octet-stream\r\n\r\n").encode()
    left = size
    while left > 0:
        yield chunk[:min(left, len(chunk))]
        left -= len(chunk)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _post_stream(server, path: str, body) -> httpx.Response:
    return server.http.post(path, content=body, headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


def test_a_500_mb_dataset_streams_in_within_64_mib(server):
    start = time.monotonic()
    r, growth, outside = server.measure(lambda: _post_stream(
        server, "/v1/datasets", _multipart({"task": "classification", "format": "imagefolder"}, "big.zip",
                                           BIG_UPLOAD)))
    elapsed = time.monotonic() - start
    print(f"\n{BIG_UPLOAD / 1e6:.0f} MB dataset upload: peak RSS growth {growth / MIB:.1f} MiB in {elapsed:.1f} s")
    assert r.status_code == 422 and "not a zip or tar archive" in r.json()["detail"], r.text  # after staging all
    assert growth <= 64 * MIB
    assert outside == set()
    assert list((server.home / "artifacts/.staging").iterdir()) == []


def test_a_model_upload_costs_the_api_at_most_one_and_a_half_times_the_file(server, tmp_path):
    model = onnx_models.to_bytes(onnx_models.big_linear(64))
    r, growth, outside = server.measure(lambda: server.http.post(
        "/v1/models/big/versions", files={"file": ("m.onnx", model)}, data={"task": "fraud"}))
    print(f"\n{len(model) / MIB:.0f} MiB model upload: peak RSS growth {growth / MIB:.1f} MiB "
          f"({growth / len(model):.2f}x the file)")
    assert r.status_code == 201, r.text
    assert growth <= 1.5 * len(model)  # the checks run in a child process (app/registry/onnx_inspect.py)
    assert outside == set()


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "npz", "movielens-zip", "v2-gzip"])
def test_a_refused_bomb_costs_at_most_64_mib(server, kind):
    bombs = {
        "zip": lambda: ("/v1/datasets", "b.zip", hostile.zip_bomb(512 * MIB), {"task": "classification"}),
        "tar.gz": lambda: ("/v1/datasets", "b.tar.gz", hostile.tar_gz_bomb(512 * MIB), {"task": "classification"}),
        "npz": lambda: ("/v1/datasets", "b.npz", hostile.npz_bomb(8192), {"task": "classification"}),
        "movielens-zip": lambda: ("/v1/datasets", "b.zip", hostile.zip_bomb(512 * MIB, "ml/ratings.csv"),
                                  {"task": "recommendation", "format": "movielens"}),
    }
    if kind == "v2-gzip":
        body = hostile.gz_bomb(512 * MIB)
        call = lambda: server.http.post("/v2/models/nope/infer", content=body,  # noqa: E731
                                        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    else:
        path, name, content, data = bombs[kind]()
        call = lambda: server.http.post(path, files={"file": (name, content)}, data=data)  # noqa: E731
    r, growth, outside = server.measure(call)
    print(f"\n{kind} bomb: {r.status_code}, peak RSS growth {growth / MIB:.1f} MiB")
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json"), r.text
    assert growth <= 64 * MIB
    assert outside == set()


def test_a_chunked_body_without_length_is_stopped_at_the_limit_with_a_413(server):
    """No Content-Length to refuse up front: the bytes received are counted, and the answer comes while
    the client is still sending (the predict routes' limit is max_request_bytes, 32 MiB)."""
    import select
    import socket

    host, port = server.url.removeprefix("http://").split(":")
    sent, answer = 0, b""
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall((f"POST /v1/models/any/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
                      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
        chunk = b"%x\r\n" % MIB + b" " * MIB + b"\r\n"
        while sent < 200 * MIB:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += MIB
        sock.settimeout(10)
        while b"\r\n\r\n" not in answer or len(answer) < answer.index(b"\r\n\r\n") + 50:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"application/problem+json" in head and b"over the limit" in body
    assert sent <= 48 * MIB, f"the server let {sent / MIB:.0f} MiB in before answering"
