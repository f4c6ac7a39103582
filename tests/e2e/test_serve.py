"""`dlserve serve` as `make run` starts it: a real process on a real port, migrating an empty
SQLite database, creating and printing a local admin key, then serving the registry."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests import onnx_models


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp_path: Path, log_name: str) -> tuple[subprocess.Popen, str, Path]:
    port = _free_port()
    # the port through the settings' variable, as `DLSERVE_PORT=8100 make run` gives it
    env = {**os.environ, "DLSERVE_HOME": str(tmp_path / "var"), "DLSERVE_PORT": str(port)}
    env = {k: v for k, v in env.items() if k not in ("DLSERVE_ADMIN_KEY", "DLSERVE_DATABASE_URL", "DLSERVE_HOST")}
    log = open(tmp_path / log_name, "w+")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dlserve"), "serve"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None, Path(log.name).read_text()
        time.sleep(0.1)
    else:
        _stop(proc)
        pytest.fail("server never became ready:\n" + Path(log.name).read_text())
    return proc, base, Path(log.name)


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


@pytest.fixture
def server(tmp_path):
    proc, base, log = _start(tmp_path, "serve.log")
    try:
        yield base, log, tmp_path
    finally:
        _stop(proc)


def test_first_start_prints_a_working_admin_key_and_serves_the_registry(server):
    base, log, home = server
    text = log.read_text()
    key = re.search(r"Created a local admin key .*: (dls_\S+)", text).group(1)
    assert f"curl -H 'Authorization: Bearer {key}' {base}/v1/models" in text
    var = home / "var"
    # the service's state is its user's alone: key hashes, data, models, the broker's messages
    for path in (var / "admin.key", var / "dlserve.db"):
        assert path.stat().st_mode & 0o777 == 0o600, path
    for path in (var, var / "artifacts", var / "broker"):
        assert path.stat().st_mode & 0o777 == 0o700, path

    h = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{base}/v1/models").status_code == 401
    r = httpx.post(f"{base}/v1/models/tiny/versions", headers=h, data={"task": "classification"},
                   files={"file": ("tiny.onnx", onnx_models.to_bytes(onnx_models.tiny_classifier()))})
    assert r.status_code == 201, r.text
    assert httpx.put(f"{base}/v1/models/tiny/aliases/production", json={"version": 1}, headers=h).status_code == 200
    assert httpx.delete(f"{base}/v1/models/tiny/versions/1", headers=h).status_code == 409
    assert "dlserve_http_requests_total" in httpx.get(f"{base}/metrics", headers=h).text


def test_a_restart_does_not_print_the_admin_key_again(server):
    base, log, home = server
    key = (home / "var" / "admin.key").read_text().strip()
    assert key in log.read_text()  # shown once, when created
    proc, _, log2 = _start(home, "serve2.log")
    _stop(proc)
    text = log2.read_text()
    assert key not in text and "dls_" not in text
    assert f"Admin key: kept in {home / 'var' / 'admin.key'}" in text


def test_make_run_takes_a_port_and_a_host():
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    out = subprocess.run(["make", "-n", "run", "PORT=8100", "HOST=0.0.0.0"], cwd=root, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "dlserve serve --host 0.0.0.0 --port 8100" in out
    # a HOST the shell exports (zsh does: the machine's name) is not taken for the address to bind
    out = subprocess.run(["make", "-n", "run"], cwd=root, env={**env, "HOST": "laptop", "PORT": "1"},
                         capture_output=True, text=True, check=True).stdout
    assert "laptop" not in out and "--port" not in out
