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


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    env = {**os.environ, "DLSERVE_HOME": str(tmp_path / "var")}
    env = {k: v for k, v in env.items() if k not in ("DLSERVE_ADMIN_KEY", "DLSERVE_DATABASE_URL")}
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dlserve"), "serve", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, Path(log.name).read_text()
            time.sleep(0.1)
        else:
            pytest.fail("server never became ready:\n" + Path(log.name).read_text())
        yield base, Path(log.name), tmp_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def test_first_start_prints_a_working_admin_key_and_serves_the_registry(server):
    base, log, home = server
    text = log.read_text()
    key = re.search(r"Created a local admin key .*: (dls_\S+)", text).group(1)
    assert f"curl -H 'Authorization: Bearer {key}' {base}/v1/models" in text
    assert (home / "var" / "admin.key").stat().st_mode & 0o077 == 0  # readable by its owner only

    h = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{base}/v1/models").status_code == 401
    r = httpx.post(f"{base}/v1/models/tiny/versions", headers=h, data={"task": "classification"},
                   files={"file": ("tiny.onnx", onnx_models.to_bytes(onnx_models.tiny_classifier()))})
    assert r.status_code == 201, r.text
    assert httpx.put(f"{base}/v1/models/tiny/aliases/production", json={"version": 1}, headers=h).status_code == 200
    assert httpx.delete(f"{base}/v1/models/tiny/versions/1", headers=h).status_code == 409
    assert "dlserve_http_requests_total" in httpx.get(f"{base}/metrics", headers=h).text


def test_header_names_arrive_in_their_conventional_case(server):
    """Clients that keep headers in a plain dict look up 'Content-Type', not 'content-type'."""
    import urllib.error
    import urllib.request

    base, _, _ = server
    try:
        urllib.request.urlopen(f"{base}/v1/models")
    except urllib.error.HTTPError as e:
        headers = dict(e.headers)
    assert "problem+json" in headers.get("Content-Type", "")
    assert headers.get("WWW-Authenticate") == "Bearer" and headers.get("X-Request-ID")
