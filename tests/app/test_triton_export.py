"""GET /v1/models/{name}/versions/{v}/export?format=triton: a Triton model repository whose config.pbtxt,
parsed with Triton's own schema (model_config.proto, shipped in tritonclient), matches the version's
signature and batching; the graph byte for byte; 422 for a family of several graphs; 404s; the read scope; with
the artifacts in a bucket, the export on a host that never had the version's files."""

import hashlib
import importlib.util
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient
from fastapi.testclient import TestClient
from google.protobuf import text_format

from app.db.session import make_engine, make_sessionmaker
from app.main import create_app
from app.registry import service as registry
from app.registry.store import ArtifactStore
from models import family
from tests import onnx_models
from tests.app.test_web_session import make_key
from tests.conftest import ADMIN_KEY, assert_problem, upload
from tests.store.conftest import s3_settings

LABELS = [f"class {i}" for i in range(10)]


def _triton_schema():
    # tritonclient's grpc package needs grpcio to import; model_config_pb2 needs only protobuf: load the file alone
    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PB = _triton_schema()
ModelConfig = PB.ModelConfig


def _export(client, name: str, version: int = 1, **headers):
    return client.get(f"/v1/models/{name}/versions/{version}/export", params={"format": "triton"}, headers=headers)


def _repository(r) -> dict[str, bytes | None]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() if m.isfile() else None for m in tar.getmembers()}


def _config(files: dict, name: str):
    # strict: Parse refuses a field or enum value Triton's schema does not have
    return text_format.Parse(files[f"{name}/config.pbtxt"].decode(), ModelConfig())


def test_a_classifier_exports_as_a_triton_repository_true_to_its_signature(client, settings, tiny_onnx):
    meta = {"labels": LABELS, "batching": {"max_batch_size": 8, "max_queue_delay_ms": 1.5}}
    upload(client, "pets", tiny_onnx, metadata=json.dumps(meta))
    r = _export(client, "pets", Authorization=f"Bearer {make_key(settings, ['read'])}")
    files = _repository(r)
    assert set(files) == {"pets", "pets/config.pbtxt", "pets/labels.txt", "pets/1", "pets/1/model.onnx"}
    assert files["pets/1/model.onnx"] == tiny_onnx
    assert r.headers["x-model-sha256"] == hashlib.sha256(tiny_onnx).hexdigest()
    assert r.headers["content-disposition"] == 'attachment; filename="pets-v1-triton.tar.gz"'
    assert files["pets/labels.txt"].decode().splitlines() == LABELS
    config = _config(files, "pets")
    assert (config.name, config.platform, config.backend) == ("pets", "onnxruntime_onnx", "onnxruntime")
    assert list(config.version_policy.specific.versions) == [1]
    assert config.max_batch_size == 8  # the version's own batching, not the settings' 32
    assert config.dynamic_batching.max_queue_delay_microseconds == 1500
    signature = client.get("/v1/models/pets/versions/1").json()
    for ours, theirs in ((signature["inputs"], config.input), (signature["outputs"], config.output)):
        assert [t["name"] for t in ours] == [t.name for t in theirs]
        assert [f"TYPE_{t['datatype']}" for t in ours] == [PB.DataType.Name(t.data_type) for t in theirs]
        assert [t["shape"][1:] for t in ours] == [list(t.dims) for t in theirs]  # the batch dimension is Triton's
    assert config.output[0].label_filename == "labels.txt"
    # what Triton will feed the graph, a batch of 2 built from config.pbtxt alone, runs in ONNX Runtime and
    # gives outputs of the configured dims
    session = ort.InferenceSession(files["pets/1/model.onnx"], providers=["CPUExecutionProvider"])
    feeds = {t.name: np.zeros([2, *(d if d > 0 else 1 for d in t.dims)], np.float32) for t in config.input}
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    assert {t.name: [2, *t.dims] for t in config.output} == {k: list(v.shape) for k, v in got.items()}
    assert _export(client, "pets").content == r.content  # the same bytes each time


def test_every_datatype_and_one_value_rows_map_to_tritons_types(client, settings):
    upload(client, "echo", onnx_models.echo_all_types(), task="fraud")
    config = _config(_repository(_export(client, "echo")), "echo")
    assert config.max_batch_size == settings.max_batch_size  # no batching in the metadata: the settings'
    types = {t.name: PB.DataType.Name(t.data_type) for t in config.input}
    assert types == {"f32": "TYPE_FP32", "i64": "TYPE_INT64", "i32": "TYPE_INT32", "b": "TYPE_BOOL",
                     "f16": "TYPE_FP16", "s": "TYPE_STRING"}
    by_name = {t.name: t for t in config.input}
    assert list(by_name["f32"].dims) == [2] and not by_name["f32"].HasField("reshape")
    # [batch] is one value a row: Triton wants dims [1], reshaped to [] for the graph
    assert list(by_name["i64"].dims) == [1] and by_name["i64"].HasField("reshape")
    assert list(by_name["i64"].reshape.shape) == []
    assert all(not t.label_filename for t in config.output)  # no labels in the metadata: no labels file


def test_a_version_of_several_graphs_is_refused_saying_why(client, settings, tiny_onnx, tmp_path):
    store = ArtifactStore(settings.resolved_artifact_root)
    for n, data in {"model.onnx": tiny_onnx, "decoder.onnx": tiny_onnx}.items():
        (tmp_path / n).write_bytes(data)
    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as s:
        registry.register_version(s, store, name="captions", task="captioning", staged_file=tmp_path / "model.onnx",
                                  sha256=hashlib.sha256(tiny_onnx).hexdigest(), size_bytes=len(tiny_onnx),
                                  signature={}, extra_files={"decoder.onnx": tmp_path / "decoder.onnx"})
        s.commit()
    engine.dispose()
    body = assert_problem(_export(client, "captions"), 422, "cannot be exported for Triton", "beam search", "/artifact")
    assert body["field"] == "format"
    described = {f["task"]: f["triton"] for f in client.get("/v1/families").json()}
    assert described["captioning"]["exported"] is False and described["classification"]["exported"] is True
    assert described["classification"]["notes"] == family("classification").triton


def test_unknown_versions_formats_and_keys_are_refused(client, settings, tiny_onnx):
    upload(client, "pets", tiny_onnx)
    assert_problem(_export(client, "pets", 2), 404, "no version 2")
    assert_problem(_export(client, "nobody"), 404)
    assert_problem(client.get("/v1/models/pets/versions/1/export", params={"format": "torchserve"}), 422, "format")
    assert_problem(client.get("/v1/models/pets/versions/1/export"), 422, "format")
    assert_problem(_export(client, "pets", Authorization=f"Bearer {make_key(settings, ['predict'])}"), 403)
    assert_problem(_export(client, "pets", Authorization="Bearer nope"), 401)


def test_a_replica_exports_a_version_uploaded_to_another_from_the_bucket(s3_uri, tmp_path, database_url, tiny_onnx):
    """DLSERVE_ARTIFACT_ROOT=s3://...: the replica asked has nothing of the version on its disk; the graph comes
    from the bucket, checked against the registry's sha256, into its own cache."""
    files = {}
    for host in ("uploader", "exporter"):  # two hosts, one after the other, sharing the database and the bucket
        with TestClient(create_app(s3_settings(tmp_path / host, database_url, s3_uri)),
                        raise_server_exceptions=False) as c:
            c.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
            if host == "uploader":
                upload(c, "pets", tiny_onnx, metadata=json.dumps({"labels": LABELS}))
            else:
                assert not list((tmp_path / host).rglob("model.onnx"))
                files = _repository(_export(c, "pets"))
    assert files["pets/1/model.onnx"] == tiny_onnx
    assert files["pets/labels.txt"].decode().splitlines() == LABELS
    assert _config(files, "pets").output[0].label_filename == "labels.txt"


@pytest.mark.parametrize("task", ["classification", "detection", "fraud", "recommendation", "translation",
                                  "captioning"])
def test_each_family_says_what_is_exported(task):
    assert family(task).triton, f"{task} declares no Family.triton line"
