"""The client commands against a real server (uvicorn on a socket, the real database): a summary by default,
`--json` that parses, exit codes, one-line errors and never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from app.cli import cli
from app.db.tables import TrainingRun
from app.settings import Settings
from tests import onnx_models
from tests.app.test_fraud import csv_bytes
from tests.conftest import ADMIN_KEY, empty_tables, root_path
from tests.live_server import live_server

# The subject is the family, the CLI or the job's checks, not the database: one backend (tests/conftest.py).
pytestmark = pytest.mark.one_backend

CONFUSION = [[90, 3], [2, 5]]


@pytest.fixture(scope="module")
def server(migrated_database_url, tmp_path_factory):
    empty_tables(migrated_database_url)
    home = tmp_path_factory.mktemp("server")
    settings = Settings(home=home, database_url=migrated_database_url, admin_key=ADMIN_KEY, _env_file=None)
    with live_server(settings) as host:
        yield f"http://{host}", settings


@pytest.fixture
def dlserve(server, tmp_path):
    url, _ = server
    env = {"DLSERVE_URL": url, "DLSERVE_KEY": ADMIN_KEY, "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "DLSERVE_HOME": str(tmp_path / "nowhere"), "DLSERVE_PROFILE": None, "DLSERVE_DEBUG": None}

    def run(*args: str, ok: bool = True, input: str | None = None, **more_env):
        result = CliRunner().invoke(cli, list(args), env={**env, **more_env}, input=input)
        assert "Traceback" not in result.output, result.output
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code != 0, result.output
            lines = result.stderr.strip().splitlines()
            if result.exit_code == 2:  # a usage error: typer's usage line and what is wrong with the arguments
                assert lines[-1].startswith("Error: "), result.stderr
            else:
                assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        return result

    return run


def fraud_onnx() -> bytes:
    """features [N, 2] -> scores [N, 3]: sigmoid(sum) and each feature as its contribution."""
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["features", "axes"], ["sum"], keepdims=1),
         helper.make_node("Sigmoid", ["sum"], ["score"]),
         helper.make_node("Concat", ["score", "features"], ["scores"], axis=1)],
        "fraud", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx_models.to_bytes(model)


def test_registry_commands_print_summaries_and_json(dlserve, tmp_path, tiny_onnx):
    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx)
    meta = json.dumps({"labels": [f"c{i}" for i in range(10)], "preprocessing": {"size": [32, 32]}})
    out = dlserve("versions", "upload", "clf", str(model), "--task", "classification", "--metadata", meta,
                  "--alias", "production").stdout
    assert "registered clf version 1" in out and "production -> 1" in out
    dlserve("versions", "upload", "clf", str(model), "--task", "classification", "--metadata", meta)

    listed = dlserve("models").stdout
    assert "NAME" in listed and "clf" in listed and "production=1" in listed
    shown = dlserve("models", "show", "clf").stdout
    assert "VERSION" in shown and "classification" in shown and len(shown.splitlines()) < 20
    assert json.loads(dlserve("models", "clf", "--json").stdout)["latest_version"] == 2  # bare NAME: show
    assert "input FP32[-1, 3, 32, 32]" in dlserve("versions", "show", "clf", "1").stdout

    assert "staging -> version 2" in dlserve("aliases", "set", "clf", "staging", "2").stdout
    refused = dlserve("versions", "delete", "clf", "2", ok=False)
    assert "409" in refused.stderr and "staging" in refused.stderr
    dlserve("aliases", "remove", "clf", "staging")
    assert json.loads(dlserve("versions", "delete", "clf", "2", "--json").stdout) == \
        {"deleted": {"name": "clf", "version": 2}}

    image = tmp_path / "digit.png"
    image.write_bytes(onnx_models.png((onnx_models.np.arange(32 * 32 * 3) % 255).astype("uint8").reshape(32, 32, 3)))
    answer = dlserve("predict", "clf", str(image), "--param", "top_k=2").stdout
    assert answer.startswith("clf version 1") and "digit.png: c" in answer
    assert len(json.loads(dlserve("predict", "clf", str(image), "--json").stdout)["outputs"]) == 1
    # an image model given a sentence: the CLI says which file it cannot read (was a FileNotFoundError traceback)
    assert "cannot read a sentence" in dlserve("predict", "clf", "a sentence", ok=False).stderr
    # a translation model takes the sentence itself: it reaches the server (this stand-in model can't translate)
    dlserve("versions", "upload", "tr", str(model), "--task", "translation", "--alias", "production")
    sent = dlserve("predict", "tr", "a sentence", ok=False).stderr
    assert "422" in sent and "cannot read" not in sent


def test_predict_reads_records_as_json_and_whole_bodies(dlserve, tmp_path):
    model = tmp_path / "fraud.onnx"
    model.write_bytes(fraud_onnx())
    dlserve("versions", "upload", "fr", str(model), "--task", "fraud", "--alias", "production",
            "--metadata", json.dumps({"features": ["a", "b"], "threshold": 0.5}))
    out = dlserve("predict", "fr", '{"a": 2, "b": 1}').stdout  # a bare record: wrapped in {"features": ...}
    assert "fraud: yes" in out and "top features a, b" in out
    records = tmp_path / "records.json"
    records.write_text(json.dumps([{"features": {"a": -3, "b": 0}}, {"a": 1, "b": 1}]))
    out = dlserve("predict", "fr", str(records)).stdout
    assert "records.json[0]: score 0.04743, fraud: no" in out and "records.json[1]" in out
    body = json.dumps({"inputs": [{"features": {"a": 0, "b": 0}}], "parameters": {"threshold": 0.4}})
    answer = json.loads(dlserve("predict", "fr", "--input-json", "-", "--json", input=body).stdout)
    assert answer["outputs"][0]["is_fraud"] is True and answer["outputs"][0]["threshold"] == 0.4
    assert "stdin: score" in dlserve("predict", "fr", "-", input='{"a": 1, "b": 2}').stdout
    bad = dlserve("predict", "fr", '{"a": 1}', ok=False).stderr
    assert "422" in bad and "inputs[0].features.b" in bad
    # one bad record among good ones: the good ones are answered, the bad one's error is printed in its place
    records.write_text(json.dumps([{"a": 1, "b": 1}, {"a": 1}, {"a": "x", "b": 0}]))
    some = dlserve("predict", "fr", str(records), ok=False)
    assert "records.json[0]: score" in some.stdout
    assert "records.json[1]: error 422: inputs[1].features.b: missing" in some.stdout
    assert "records.json[2]: error 422: inputs[2].features.a: must be a number" in some.stdout
    assert some.stderr.strip() == "error: 2 of 3 inputs could not be answered (their errors are above)"


def test_datasets_report_their_familys_summary(dlserve, tmp_path):
    csv = tmp_path / "tx.csv"
    csv.write_bytes(csv_bytes(120))
    out = dlserve("datasets", "upload", str(csv), "--task", "fraud").stdout
    assert "?" not in out and "120 rows" in out and "frauds" in out and "label column 'Class'" in out
    ds_id = out.split()[1].rstrip(":")
    assert ds_id in dlserve("datasets").stdout
    shown = dlserve("datasets", "show", ds_id).stdout
    assert "legitimate" in shown and "columns" in shown
    assert json.loads(dlserve("datasets", "list", "--json").stdout)["total"] >= 1
    dlserve("datasets", "delete", ds_id)
    assert "404" in dlserve("datasets", "show", ds_id, ok=False).stderr


def test_a_succeeded_job_with_a_confusion_matrix_is_shown_and_followed(dlserve, server):
    _, settings = server
    from app.db.session import make_engine, make_sessionmaker

    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as s:
        run = TrainingRun(task="fraud", params={"epochs": 1}, status="succeeded",
                          latest_metrics={"loss": 0.1, "val_auprc": 0.8123, "val_confusion_matrix": CONFUSION,
                                          "val_note": None},
                          progress={"epoch": 1.0, "epochs": 1, "step": 10, "total": 10})
        s.add(run)
        s.commit()
        job_id = run.id
    engine.dispose()
    followed = dlserve("jobs", "follow", job_id)  # exited 1 with a TypeError before
    assert f"job {job_id} succeeded" in followed.stdout and "val_confusion_matrix [[90,3],[2,5]]" in followed.stdout
    shown = dlserve("jobs", job_id).stdout
    assert "val_auprc" in shown and "0.8123" in shown and "[[90,3],[2,5]]" in shown
    assert job_id in dlserve("jobs", "list", "--status", "succeeded").stdout
    assert json.loads(dlserve("jobs", "show", job_id, "--json").stdout)["metrics"]["val_confusion_matrix"] == CONFUSION
    assert "409" in dlserve("jobs", "cancel", job_id, ok=False).stderr
    assert "404" in dlserve("jobs", "follow", "nosuchjob", ok=False).stderr


def test_tags_logs_and_alias_history_from_the_command_line(dlserve, server, tmp_path, tiny_onnx):
    _, settings = server
    from app.db.session import make_engine, make_sessionmaker
    from app.jobs import logs

    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as s:
        run = TrainingRun(task="fraud", params={}, status="failed", progress={}, latest_metrics={})
        s.add(run)
        s.flush()
        logs.append(s, run.id, 0, "loading\nValueError: boom\n", 1 << 20)
        s.commit()
        job_id = run.id
    engine.dispose()
    out = dlserve("jobs", "tag", job_id, "--tag", "sweep", "--tag", "cpu", "--note", "first try").stdout
    assert out.strip() == f"job {job_id}: tags cpu, sweep; note 'first try'"
    assert "sweep" in dlserve("jobs", job_id).stdout
    assert dlserve("jobs", "tag", job_id, "--tag", "").stdout.strip() == f"job {job_id}: tags none; note 'first try'"
    assert dlserve("jobs", "log", job_id).stdout == "loading\nValueError: boom\n"
    assert dlserve("jobs", "log", job_id, "-f").stdout == "loading\nValueError: boom\n"  # ended: -f returns
    assert "404" in dlserve("jobs", "log", "nosuchjob", ok=False).stderr

    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx)
    for _ in range(2):
        dlserve("versions", "upload", "hist", str(model), "--task", "classification")
    dlserve("aliases", "set", "hist", "production", "1")
    dlserve("aliases", "set", "hist", "production", "2")
    history = dlserve("aliases", "history", "hist", "production").stdout
    assert "production -> 2 now; 2 move(s)" in history and "DLSERVE_ADMIN_KEY" in history
    assert dlserve("aliases", "rollback", "hist", "production").stdout.strip() == "hist: production -> version 1"
    assert "404" in dlserve("aliases", "rollback", "hist", "staging", ok=False).stderr


def test_keys_over_http_with_scopes_and_expiry(dlserve):
    made = json.loads(dlserve("keys", "create", "--scopes", "read", "--name", "dash", "--expires-in", "2h",
                              "--json").stdout)
    assert made["scopes"] == ["read"] and made["expires_at"]
    listed = dlserve("keys", "list").stdout
    assert made["prefix"] in listed and "dash" in listed and made["key"] not in listed
    assert "jobs" not in dlserve("jobs", DLSERVE_KEY=made["key"]).stderr  # a read key lists jobs
    refused = dlserve("keys", "list", ok=False, DLSERVE_KEY=made["key"]).stderr
    assert "403" in refused and "admin" in refused
    plain = dlserve("keys", "create", "--scopes", "predict")
    assert plain.stdout.strip().startswith("dls_") and "not shown again" in plain.stderr
    assert f"revoked {made['prefix']}" in dlserve("keys", "revoke", made["prefix"]).stdout
    assert "401" in dlserve("jobs", ok=False, DLSERVE_KEY=made["key"]).stderr
    assert "not both" in dlserve("keys", "create", "--expires-in", "1h", "--expires-at", "2099-01-01",
                                 ok=False).output


def test_errors_are_one_line_and_debug_shows_the_traceback(dlserve, server):
    assert "404" in dlserve("models", "show", "nosuch", ok=False).stderr
    assert "401" in dlserve("models", ok=False, DLSERVE_KEY="dls_bad_key").stderr
    assert "cannot reach" in dlserve("models", ok=False, DLSERVE_URL="http://127.0.0.1:9").stderr
    result = CliRunner().invoke(cli, ["--debug", "models", "show", "nosuch"],
                                env={"DLSERVE_URL": server[0], "DLSERVE_KEY": ADMIN_KEY})
    assert result.exit_code != 0 and result.exception is not None  # raised, for the traceback


BLOCK_HEAVY_IMPORTS = textwrap.dedent("""
    import sys
    class _Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "onnxruntime"):
                raise ImportError(f"{name} is not installed (blocked by the test)")
    sys.meta_path.insert(0, _Refuse())
""")


def test_client_commands_need_neither_torch_nor_onnxruntime(server, tmp_path, tiny_onnx):
    (tmp_path / "sitecustomize.py").write_text(BLOCK_HEAVY_IMPORTS)
    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{root_path()}", "DLSERVE_URL": server[0],
           "DLSERVE_KEY": ADMIN_KEY, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    script = ("import app.cli, sys\n"
              "for argv in sys.argv[1:]:\n"
              "    sys.argv = ['dlserve', *argv.split()]\n"
              "    try:\n        app.cli.main()\n"
              "    except SystemExit as e:\n        assert not e.code, (argv, e.code)\n"
              "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules\n")
    commands = ["--version", f"versions upload light {model} --task classification", "models list --json",
                "models show light", "datasets list", "jobs list", "keys list", "aliases set light production 1"]
    proc = subprocess.run([sys.executable, "-c", script, *commands], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_recommendation_answers_say_which_ids_the_model_did_not_know():
    from app.cli.predict import describe

    known = describe("recommendation", {"items": [{"item": 10, "score": 4.9}], "known": True})
    cold = describe("recommendation", {"ratings": [{"item": 3, "rating": 4.0, "known": True},
                                                   {"item": 4000, "rating": 3.5, "known": False}]})
    assert known == ["item 10 4.9"]
    assert cold == ["item 3 4, item 4000 3.5 (not in the training data: bias only)"]
