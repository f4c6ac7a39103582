"""A training worker is not a web server: importing the worker side (the Celery app, its tasks and the
runner) loads neither FastAPI nor Starlette, so a worker image needs neither and their start-up cost is
not paid per worker process."""

import subprocess
import sys

from tests.conftest import root_path

REFUSE = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("fastapi", "starlette", "uvicorn"):
            raise ImportError(f"{name} imported by the worker")
sys.meta_path.insert(0, Refuse())
import workers.celery_app, workers.tasks, workers.runner
print("ok")
"""


def test_the_worker_imports_no_web_framework():
    out = subprocess.run([sys.executable, "-c", REFUSE], capture_output=True, text=True, cwd=root_path(), timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
