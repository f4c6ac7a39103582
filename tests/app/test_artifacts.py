"""Downloads: a version's ONNX file (or a zip of a multi-file version), a run's files with their scopes,
names looked up (never paths), bytes as stored."""

import base64
import hashlib
import io
import zipfile

import pytest

from app.db.session import make_engine, make_sessionmaker
from app.registry import service as registry
from app.registry.store import ArtifactStore
from tests.app.test_web_session import make_key
from tests.conftest import assert_problem, upload
from tests.workers import synthetic
from workers.runner import run_training


def test_a_version_downloads_as_its_onnx_file_with_its_digest(client, settings, tiny_onnx):
    upload(client, "pets", tiny_onnx)
    reader = {"Authorization": f"Bearer {make_key(settings, ['read'])}"}
    r = client.get("/v1/models/pets/versions/1/artifact", headers=reader)
    assert r.status_code == 200 and r.content == tiny_onnx
    digest = hashlib.sha256(tiny_onnx)
    assert r.headers["x-model-sha256"] == digest.hexdigest()
    assert r.headers["repr-digest"] == f"sha-256=:{base64.b64encode(digest.digest()).decode()}:"
    assert r.headers["content-disposition"] == 'attachment; filename="pets-v1.onnx"'
    assert r.headers["content-type"] == "application/octet-stream"
    assert_problem(client.get("/v1/models/pets/versions/2/artifact"), 404, "no version 2")
    assert_problem(client.get("/v1/models/pets/versions/1/artifact",
                              headers={"Authorization": f"Bearer {make_key(settings, ['predict'])}"}), 403)


def test_a_version_of_several_files_downloads_as_a_zip_of_its_folder(client, settings, tiny_onnx, tmp_path):
    store = ArtifactStore(settings.resolved_artifact_root)
    files = {"model.onnx": tiny_onnx, "decoder.onnx": tiny_onnx[::-1], "tokenizer.json": b'{"vocab": {}}' * 1000}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as s:
        registry.register_version(s, store, name="captions", task="captioning", staged_file=tmp_path / "model.onnx",
                                  sha256=hashlib.sha256(tiny_onnx).hexdigest(), size_bytes=len(tiny_onnx),
                                  signature={}, extra_files={n: tmp_path / n for n in files if n != "model.onnx"})
        s.commit()
    engine.dispose()
    r = client.get("/v1/models/captions/versions/1/artifact")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == 'attachment; filename="captions-v1.zip"'
    assert r.headers["x-model-sha256"] == hashlib.sha256(tiny_onnx).hexdigest()
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == ["decoder.onnx", "model.onnx", "signature.json", "tokenizer.json"]
    assert all(archive.read(n) == data for n, data in files.items())
    assert archive.getinfo("tokenizer.json").compress_size < 2000  # deflated; the graphs are stored as they are
    assert client.get("/v1/models/captions/versions/1/artifact").content == r.content  # the same bytes each time


@pytest.fixture
def trained(client, settings, one_thread):
    r = client.post("/v1/datasets", files={"file": ("c.npz", synthetic.npz_bytes(n=64, size=8))},
                    data={"task": "classification"})
    job = client.post("/v1/jobs", json={"task": "classification", "dataset_id": r.json()["id"], "register_as": "c",
                                        "config": {"epochs": 1, "batch_size": 16, "width": 4}}).json()
    assert run_training(job["id"], settings) == "succeeded"
    return job


def test_a_runs_files_are_listed_and_downloaded_with_their_scope(client, settings, trained):
    reader = {"Authorization": f"Bearer {make_key(settings, ['read'])}"}
    trainer = {"Authorization": f"Bearer {make_key(settings, ['train'])}"}
    listing = client.get(f"/v1/jobs/{trained['id']}/artifacts", headers=reader).json()
    items = {a["name"]: a for a in listing["items"]}
    assert set(items) == {"model.onnx", "signature.json", "weights.pt", "last.pt"}
    model = settings.resolved_artifact_root / "models/c/1/model.onnx"
    assert items["model.onnx"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert items["model.onnx"]["size_bytes"] == model.stat().st_size and items["model.onnx"]["scope"] == "read"
    assert (items["last.pt"]["kind"], items["last.pt"]["scope"]) == ("checkpoint", "train")
    assert (items["weights.pt"]["kind"], items["weights.pt"]["scope"]) == ("weights", "train")
    assert str(settings.home) not in str(listing)  # no server path anywhere

    r = client.get(f"/v1/jobs/{trained['id']}/artifacts/model.onnx", headers=reader)
    assert r.status_code == 200 and r.content == model.read_bytes()
    assert r.headers["content-disposition"] == f'attachment; filename="{trained["id"][:8]}-model.onnx"'
    body = assert_problem(client.get(f"/v1/jobs/{trained['id']}/artifacts/last.pt", headers=reader), 403, "'train'")
    assert body["required_scope"] == "train"
    r = client.get(f"/v1/jobs/{trained['id']}/artifacts/last.pt", headers=trainer)
    checkpoint = settings.resolved_artifact_root / f"runs/{trained['id']}/checkpoints/last.pt"
    assert r.status_code == 200 and r.content == checkpoint.read_bytes()

    import torch

    state = torch.load(io.BytesIO(client.get(f"/v1/jobs/{trained['id']}/artifacts/weights.pt").content),
                       weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


@pytest.mark.parametrize("name, status", [
    ("passwd", 404), ("..x", 422), (".env", 422), ("a%2F..%2F..%2Fdlserve.db", 404), ("last.pt%00", 422),
])
def test_names_are_looked_up_never_followed(client, settings, trained, name, status):
    r = client.get(f"/v1/jobs/{trained['id']}/artifacts/{name}")
    assert_problem(r, status)
    assert str(settings.home) not in r.text


def test_a_job_without_files_lists_none(client):
    r = client.post("/v1/datasets", files={"file": ("c.npz", synthetic.npz_bytes(n=16, size=8))},
                    data={"task": "classification"})
    job = client.post("/v1/jobs", json={"task": "classification", "dataset_id": r.json()["id"]}).json()
    assert client.get(f"/v1/jobs/{job['id']}/artifacts").json() == {"job_id": job["id"], "items": []}
    assert_problem(client.get(f"/v1/jobs/{job['id']}/artifacts/model.onnx"), 404, "it has: none yet")
    assert_problem(client.get("/v1/jobs/nope/artifacts"), 404, "no job")
