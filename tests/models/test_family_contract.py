"""Every family is held to its contract (models/contract.py): what it declares is what its modules provide,
and the parts the API imports load where torch cannot be imported at all. The platform reads the
declarations and never probes; this test is the one place that looks into the modules, to keep the
declarations true."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema_rs
import onnxruntime as ort
import orjson
import pytest
from pydantic import BaseModel

import models
from app.main import create_app
from app.registry.onnx_inspect import inspect_here
from app.settings import Settings
from models import FAMILIES, family
from models.common.errors import ITEM_FAULT_KINDS, PARAMETERS, InputError
from models.common.validation import check_item, check_parameters
from models.contract import Family
from tests.conftest import root_path
from tests.family_cases import CASES

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
if f.quantisation is not None:  # the int8 job's evaluation runs beside ONNX Runtime, torch or not
    f.evaluation
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
    # the files beside model.onnx: test_translation and test_captioning hold them to what the export writes
    assert bool(contract.artifacts) == contract.multi_file and "model.onnx" not in contract.artifacts
    assert contract.metrics and all(isinstance(v, str) and v.strip() for v in contract.metrics.values())
    if contract.distributed:  # several processes shard batches and average gradients in the common loop only
        assert training.train.__qualname__.startswith("trainer.<locals>"), "distributed needs loop.trainer's train"
    # the metric that ranks runs (the dashboard's best column) is one the family reports
    key, goal = contract.best_metric
    assert key in contract.metrics and goal in ("max", "min"), contract.best_metric
    gate = contract.quantisation  # int8 versions: judged on a metric the run reports, measured by evaluation.py
    if gate is not None:
        assert gate.metric in contract.metrics and gate.direction in ("max", "min") and gate.tolerance > 0, gate
        assert gate.methods and set(gate.methods) <= {"static", "dynamic"}, gate
        assert callable(contract.evaluation.evaluate_onnx)
        assert contract.calibration or "static" not in gate.methods, "static quantisation needs calibration batches"


# Tiny runs of each family (one per config that reports more) on the example data of `dlserve examples write`:
# what they end with is what the family declares in `metrics`, both ways. Keys reported only by runs too
# costly here (they need a source model for init_from) are named.
TINY_RUNS = {
    "classification": ("corners.zip", "imagefolder", [{"epochs": 1, "batch_size": 8},
                                                       {"epochs": 2, "batch_size": 8, "patience": 1, "tta": "flip"}]),
    "detection": ("squares.zip", "coco", [{"epochs": 1, "batch_size": 16, "width": 8, "image_size": 64,
                                           "warmup_steps": 1}]),
    "captioning": ("canvases.zip", "coco", [{"epochs": 1, "batch_size": 32, "width": 4, "hidden": 16, "embed_dim": 8,
                                             "attention_dim": 8, "max_length": 12, "eval_beam_size": 1}]),
    "translation": ("numbers.tsv", "parallel", [{"columns": "en,fr", "source_lang": "en", "target_lang": "fr",
                                                 "d_model": 16, "layers": 1, "heads": 2, "ffn": 16, "epochs": 2,
                                                 "tokenizer": "word", "vocab_size": 64, "batch_size": 64,
                                                 "max_minutes": 1e-6}]),
    "recommendation": ("ratings.csv", "csv", [{"arch": "mf", "epochs": 1, "factors": 4}]),
    "fraud": ("transactions.csv", "csv", [{"epochs": 1, "batch_size": 256},
                                          {"epochs": 1, "batch_size": 256, "arch": "hybrid"}]),
    "regression": ("lines.csv", "csv", [{"epochs": 2}]),
}
NOT_RUN_HERE = {"classification": {"init_tensors", "init_head_loaded"},
                "captioning": {"init_tensors", "init_decoder_loaded"}}


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    from app.examples import write
    from tests.toyfamily.test_toy_family import _csv

    folder = tmp_path_factory.mktemp("examples")
    write(folder)
    (folder / "lines.csv").write_bytes(_csv(60))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_tiny_runs_end_with_the_metrics_their_family_declares(task, examples, tmp_path):
    import torch

    from models.contract import run_metrics

    contract, (file, fmt, configs) = family(task), TINY_RUNS[task]
    training, path = contract.training, examples / file
    if fmt in contract.archive_formats:  # what the API does at upload
        with zipfile.ZipFile(path) as z:
            z.extractall(tmp_path / "files")
        path = tmp_path / "files"
    reported: set[str] = set()
    for config in configs:
        torch.manual_seed(0)
        cfg = contract.config(**config)
        data = training.load_dataset(path, fmt, cfg)
        model, trained = training.train(cfg, data, "cpu", lambda step, values: None)
        keys = set(run_metrics(trained, training.evaluate(model, data, "cpu")))
        assert keys <= set(contract.metrics), f"{config}: not declared: {sorted(keys - set(contract.metrics))}"
        reported |= keys
    unreported = set(contract.metrics) - reported - NOT_RUN_HERE.get(task, set())
    assert not unreported, f"declared, but no run reports them: {sorted(unreported)}"


# -- the predict contract: schemas, per-item faults, a tiny model end to end ------------------------------
@pytest.mark.parametrize("task", TASKS)
def test_a_family_declares_its_predict_schemas_and_per_item_faults(task):
    contract = family(task)
    for model in (contract.predict_input, contract.predict_parameters, contract.predict_output):
        assert isinstance(model, type) and issubclass(model, BaseModel), model
    # a fault in `parameters` concerns every item: it always fails the request
    assert contract.item_faults <= ITEM_FAULT_KINDS and PARAMETERS not in contract.item_faults
    assert task in CASES, "add a served case of the family to tests/family_cases.py"


@pytest.fixture(scope="module")
def openapi(tmp_path_factory, toy_registered):
    home = tmp_path_factory.mktemp("doc")
    app = create_app(Settings(home=home, database_url=f"sqlite:///{home / 'doc.db'}", _env_file=None))
    return app.openapi()


@pytest.mark.parametrize("task", TASKS)
def test_a_familys_schemas_render_into_the_openapi(task, openapi):
    schemas = openapi["components"]["schemas"]
    camel = "".join(p.capitalize() for p in task.replace("-", "_").split("_"))
    request, answer = schemas["PredictRequest"]["properties"], schemas["PredictResponse"]["properties"]
    for suffix, where in (("Input", request["inputs"]["items"]["anyOf"]),
                          ("Parameters", request["parameters"]["anyOf"]),
                          ("Output", answer["outputs"]["items"]["anyOf"])):
        assert {"$ref": f"#/components/schemas/{camel}{suffix}"} in where
        assert f"a {task} model" in schemas[f"{camel}{suffix}"]["description"]
    assert {"$ref": "#/components/schemas/PredictItemError"} in answer["outputs"]["items"]["anyOf"]


def _served(task: str, folder: Path):
    """(serving module, spec, run): what the platform makes of a loaded version, and one batch of it."""
    contract, case = family(task), CASES[task]
    case.build(folder)
    signature = inspect_here(folder / "model.onnx")
    serving = contract.serving
    kw = {"folder": folder} if contract.multi_file else {}
    spec = serving.make_spec(signature, case.metadata, 40_000_000, **kw)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    if contract.multi_file:
        def open_session(path):
            return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return serving, spec, serving.make_runner(session, folder, spec, open_session)
    names = [o.name for o in session.get_outputs()]
    return serving, spec, lambda feeds: dict(zip(names, session.run(names, feeds), strict=True))


@pytest.mark.parametrize("task", TASKS)
def test_a_tiny_model_goes_preprocess_onnx_runtime_postprocess_into_the_output_schema(task, tmp_path, openapi):
    contract, case = family(task), CASES[task]
    serving, spec, run = _served(task, tmp_path)
    answers = []
    for item, params in [(item, case.parameters[0]) for item in case.valid] + [(case.valid[0], p)
                                                                                for p in case.parameters[1:]]:
        check_parameters(contract.predict_parameters, params)
        checked = serving.check_params(params)
        check_item(contract.predict_input, item, 0)
        prepared = serving.preprocess(item, 0, checked, spec)
        feeds, context = prepared if isinstance(prepared, tuple) else (prepared, None)
        row = run(feeds)
        out = serving.postprocess(row, checked, spec) if context is None else serving.postprocess(row, checked, spec,
                                                                                                   context)
        answer = orjson.loads(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY))  # as the API sends it
        contract.predict_output.model_validate(answer)
        answers.append(answer)
    # the answer, with an error slot, is what the OpenAPI document declares (what the fuzzer holds it to)
    slot = {"error": {"type": "urn:dlserve:problem:unprocessable", "title": "Unprocessable content", "status": 422,
                      "detail": "inputs[1].image: not a decodable image", "field": "inputs[1].image"}}
    _validate(openapi, "PredictResponse", {"model": "m", "version": 1, "outputs": [*answers, slot]})
    _validate(openapi, "PredictRequest", {"inputs": [i for i in case.valid if not isinstance(i, bytes)],
                                          "parameters": case.parameters[-1]})


@pytest.mark.parametrize("task", TASKS)
def test_the_schemas_accept_what_serving_accepts_and_refusals_name_the_field(task, tmp_path):
    """The corpus of tests/family_cases.py through the API's order of checks: the input schema, then
    preprocess with a version's spec. What a family answered before its schemas existed is still answered."""
    contract, case = family(task), CASES[task]
    serving, spec, _ = _served(task, tmp_path)
    params = serving.check_params({})
    for item in case.valid:
        check_item(contract.predict_input, item, 0)
    for item, field in case.invalid:
        with pytest.raises(InputError) as refused:
            check_item(contract.predict_input, item, 0)
            serving.preprocess(item, 0, params, spec)
        assert refused.value.field == field, (item, str(refused.value))
        assert refused.value.kind in ITEM_FAULT_KINDS
        with pytest.raises(InputError):  # serving alone refuses it too: the schema refuses nothing new
            serving.preprocess(item, 0, params, spec)
    for bad, field in case.bad_parameters:
        with pytest.raises(InputError) as refused:
            check_parameters(contract.predict_parameters, bad)
            serving.check_params(bad)
        assert refused.value.field == field and refused.value.kind == PARAMETERS, (bad, str(refused.value))
        if bad not in case.bounded:
            with pytest.raises(InputError):
                serving.check_params(bad)


def _validate(doc: dict, component: str, value: dict) -> None:
    schema = {"$ref": f"#/components/schemas/{component}", "components": doc["components"]}
    jsonschema_rs.Draft202012Validator(schema).validate(value)  # what schemathesis checks answers with
