"""The deployment files: compose validates, the Dockerfile lints clean and installs the way make does."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import root_path

ROOT = root_path()


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip(f"{name} is not installed (.ci/run installs it)")
    return found


def test_compose_file_is_valid_and_has_the_services():
    out = subprocess.run([_tool("docker-compose"), "-f", str(ROOT / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    services = config["services"]
    assert {"postgres", "redis", "migrate", "api", "worker"} <= set(services)
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("postgres", "redis", "api"):
        assert "healthcheck" in services[name], name
    assert {"pgdata", "redisdata", "artifacts"} <= set(config["volumes"])


def test_dockerfile_lints_clean():
    out = subprocess.run([_tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_installs_with_make_like_a_laptop():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN make install\b", text, re.M)
    assert not re.search(r"^RUN .*pip install", text, re.M), "install through make, so the two cannot drift"
