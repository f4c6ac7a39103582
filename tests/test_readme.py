"""The README cannot rot: every bash block of README.md, then of the per-family quickstarts in docs/, runs as
written, in order, in one shell, against a `dlserve serve` (API and training worker) that this test starts
in an empty folder. A block is exempt only with a visible `# no-run: reason` line; the exemptions are
printed at the end of the run. The test sets environment variables (DLSERVE_URL, and a `curl` that fails
on an HTTP error, as `--fail-with-body` does); it never edits the text. Where a block shows an answer
(`# -> {...}`), the keys it shows must be in what the block printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import docblocks
from tests.conftest import root_path
from tests.live_server import free_port, serve_process

ROOT = root_path()
# docs/quantisation.md last: its quickstart quantises the classification quickstart's `corners`
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "quickstart").glob("*.md")), ROOT / "docs" / "quantisation.md"]
CURL = "#!/bin/sh\nexec {real} --fail-with-body --silent --show-error \"$@\"\n"

pytestmark = pytest.mark.slow


def _blocks() -> list[docblocks.Block]:
    return [b for page in PAGES for b in docblocks.bash_blocks(page, str(page.relative_to(ROOT)))]


def test_every_block_declares_a_reason_when_it_is_exempt():
    blocks = _blocks()
    assert blocks, "no bash blocks found"
    for b in blocks:
        assert b.no_run is None or len(b.no_run) > 10, f"{b.where}: say why the block is not run"
    assert sum(b.no_run is None for b in blocks) >= 10, "most blocks must run"


@pytest.fixture
def server(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.executable).parents[1])
    shims = tmp_path / "shims"
    shims.mkdir()
    real = next(p for p in ("/usr/bin/curl", "/bin/curl", "/usr/local/bin/curl") if os.path.exists(p))
    (shims / "curl").write_text(CURL.format(real=real))
    (shims / "curl").chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLSERVE_")}
    env |= {"PATH": f"{shims}:{env['PATH']}", "DLSERVE_URL": f"http://127.0.0.1:{port}",
            "DLSERVE_TRAIN_THREADS": "1", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    with serve_process([str(work / ".venv/bin/dlserve"), "serve", "--port", str(port)], port, tmp_path / "serve.log",
                       cwd=work, env=env):
        yield work, env


def test_the_readme_and_quickstarts_run_as_written(server, request):
    work, env = server
    blocks = _blocks()
    runnable = [b for b in blocks if b.no_run is None]
    request.config.stash.setdefault(docblocks.EXEMPT, []).extend(f"{b.where}: {b.no_run}" for b in blocks if b.no_run)
    run = subprocess.run(["bash", "-c", docblocks.script(runnable)], cwd=work, env=env, capture_output=True,
                         text=True, timeout=900)
    outs = docblocks.outputs(run.stdout)
    last = max(outs, default=0)
    assert run.returncode == 0 and "@@done" in run.stdout, (
        f"the block at {runnable[last].where} failed (exit {run.returncode}):\n{runnable[last].text}\n"
        f"--- its output ---\n{outs.get(last, '')[-3000:]}\n--- stderr ---\n{run.stderr[-3000:]}")
    for n, b in enumerate(runnable):
        missing = [k for k in b.answer_keys if f'"{k}"' not in outs.get(n, "") and f"{k}:" not in outs.get(n, "")]
        assert not missing, f"{b.where} shows {missing} in its answer, but printed:\n{outs.get(n, '')[-2000:]}"
