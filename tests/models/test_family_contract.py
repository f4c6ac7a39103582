"""Every family is held to its contract (models/contract.py): what it declares is what its modules provide,
and the parts the API imports load where torch cannot be imported at all. The platform reads the
declarations and never probes; this test is the one place that looks into the modules, to keep the
declarations true."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

import models
from models import FAMILIES, family
from models.contract import Family
from tests.conftest import root_path

# The toy family of the test tree (tests/toyfamily), registered the way an operator would, is held to the
# same contract as the built-in ones.
TOY = "regression=tests.toyfamily"
TASKS = sorted(FAMILIES) + [task for task, _ in models.parse(TOY)]
NO_TORCH = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed here (the API's image)")
sys.meta_path.insert(0, Refuse())
import models
models.register_all(sys.argv[2])
f = models.family(sys.argv[1])
f.serving, f.data
print(f.task, sorted(f.formats))
"""


@pytest.fixture(autouse=True, scope="module")
def toy_registered():
    models.register_all(TOY)
    yield
    for task, _ in models.parse(TOY):
        models.unregister(task)


@pytest.mark.parametrize("task", TASKS)
def test_a_family_declares_its_contract_under_its_task_name(task):
    contract = family(task)
    assert isinstance(contract, Family) and contract.task == task and contract.package == FAMILIES[task]
    assert contract.formats and all(isinstance(v, str) and v for v in contract.formats.values())
    assert contract.archive_formats <= set(contract.formats) and contract.either_formats <= set(contract.formats)
    assert dataclasses.is_dataclass(contract.config) and callable(contract.check_config)


@pytest.mark.parametrize("task", TASKS)
def test_the_api_side_of_a_family_imports_without_torch(task):
    out = subprocess.run([sys.executable, "-c", NO_TORCH, task, TOY], capture_output=True, text=True, cwd=root_path(),
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(task)


@pytest.mark.parametrize("task", TASKS)
def test_what_a_family_declares_is_what_its_modules_provide(task):
    contract = family(task)
    serving, data, training = contract.serving, contract.data, contract.training
    assert dict(contract.formats) == dict(data.FORMATS)
    assert contract.archive_formats == data.ARCHIVE_FORMATS
    assert contract.either_formats == frozenset(getattr(data, "EITHER_FORMATS", ()))
    assert contract.multi_file == hasattr(serving, "make_runner") == hasattr(training, "export_artifacts")
    assert contract.batch_padding == hasattr(serving, "batch_padding")
    assert contract.warmup_feeds == hasattr(serving, "warmup_feeds")
    takes_init_from = "init_from" in {f.name for f in dataclasses.fields(contract.config)}
    assert bool(contract.init_from_tasks) == takes_init_from == (contract.check_init_from is not None)
    for name in ("make_spec", "check_params", "preprocess", "postprocess"):
        assert callable(getattr(serving, name)), name
    for name in ("load_dataset", "total_steps", "train", "evaluate", "version_metadata"):
        assert callable(getattr(training, name)), name
    if not contract.multi_file:
        assert callable(training.export_onnx) and callable(training.example_inputs)
