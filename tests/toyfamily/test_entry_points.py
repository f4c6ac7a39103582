"""The second way a family plugs in: an installed distribution's `dlserve.families` entry point. The tests
write what `pip install` leaves in site-packages for a distribution (a *.dist-info folder: METADATA and
entry_points.txt) into a folder on the PYTHONPATH of real `dlserve serve` and `dlserve worker` processes;
the family package is the toy of this folder. Nothing is patched: the processes find the entry point the way
they would find an installed one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import ADMIN_KEY, root_path
from tests.live_server import free_port, serve_process
from tests.toyfamily.test_toy_family import BIAS, WEIGHTS, trains_lines

pytestmark = pytest.mark.slow
DIST = "dlserve-toy-regression"


def installed(site: Path, entries: str, dist: str = DIST) -> Path:
    """`site` as a folder where `dist` 0.1 is installed, offering `entries` (lines of task = package)."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[dlserve.families]\n{entries}\n")
    return site


def environment(home: Path, site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLSERVE_")}
    return {**env, "PYTHONPATH": os.pathsep.join([str(root_path()), str(site)]), "DLSERVE_HOME": str(home),
            "DLSERVE_ADMIN_KEY": ADMIN_KEY, **extra}


def test_an_installed_family_is_listed_trained_by_the_worker_and_served(tmp_path):
    site = installed(tmp_path / "site", "regression = tests.toyfamily")
    env = environment(tmp_path / "home", site, DLSERVE_HEARTBEAT_INTERVAL_S="0.5", DLSERVE_TRAIN_THREADS="1",
                      DLSERVE_PROGRESS_INTERVAL_S="0.1")
    port, log = free_port(), tmp_path / "serve.log"
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    with serve_process(command, port, log, env=env, cwd=tmp_path), \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                         timeout=30) as api:
        trains_lines(api, log)
        x = np.array([[1.0, 2.0, -4.0]])
        r = api.post("/v1/models/lines/predict", json={"inputs": [{"features": x[0].tolist()}]})
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["value"] == pytest.approx(float((x @ WEIGHTS + BIAS)[0]), abs=0.1)


@pytest.mark.parametrize(("entries", "says"), [
    ("regression = tests.nosuchfamily", "the package cannot be imported"),
    ("regression = tests.toyfamily:FAMILY", "is not a Python package"),
    ("linear = tests.toyfamily", "its FAMILY says task 'regression'"),
    ("fraud = tests.toyfamily", "already served by models.fraud"),
])
def test_a_broken_entry_point_stops_the_worker_in_one_line_naming_it(tmp_path, entries, says):
    site = installed(tmp_path / "site", entries)
    out = subprocess.run([sys.executable, "-m", "app.cli", "worker"], capture_output=True, text=True, timeout=60,
                         env=environment(tmp_path, site), cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    line = out.stderr.strip()
    assert "\n" not in line and f"entry point '{entries}' of {DIST} 0.1" in line and says in line, line


def test_dlserve_serve_stops_on_a_broken_entry_point_before_migrating(tmp_path):
    site = installed(tmp_path / "site", "regression = tests.nosuchfamily")
    out = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", str(free_port())], capture_output=True,
                         text=True, timeout=60, env=environment(tmp_path / "home", site), cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "\n" not in out.stderr.strip() and f"of {DIST} 0.1 (group dlserve.families)" in out.stderr
    assert not (tmp_path / "home").exists()  # nothing was created: no database, no key


REGISTERED = "import models; models.register_all({setting!r}); print(models.FAMILIES.get('regression'))"


def test_the_setting_wins_over_an_entry_point_and_two_distributions_may_not_clash(tmp_path):
    site = installed(tmp_path / "site", "regression = tests.nosuchfamily")

    def run(setting: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", REGISTERED.format(setting=setting)], capture_output=True,
                              text=True, timeout=60, env=environment(tmp_path, site), cwd=tmp_path)

    out = run("regression=tests.toyfamily")  # the operator's setting: the broken entry point is not read
    assert out.returncode == 0 and out.stdout.strip() == "tests.toyfamily", out.stderr
    assert "cannot be imported" in run("").stderr

    installed(site, "regression = tests.toyfamily", dist="another-regression")
    out = run("")
    assert out.returncode == 1
    assert "task 'regression' is also offered by" in out.stderr, out.stderr
    assert f"of {DIST} 0.1" in out.stderr and "of another-regression 0.1" in out.stderr, out.stderr
