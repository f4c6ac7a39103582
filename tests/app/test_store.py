"""A crash while writing never leaves a half model that the registry points to."""

import io
import threading

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.registry.store import ArtifactStore
from tests.conftest import ADMIN_KEY


def test_failed_write_leaves_neither_model_nor_litter(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.staged_copy(io.BytesIO(b"model bytes"), limit=1024) as (path, sha, size):
        assert size == 11 and path.read_bytes() == b"model bytes"
        with pytest.raises(TypeError):
            store.put_model("m", 1, path, {"not json": object()})
    assert not (tmp_path / "models" / "m" / "1").exists()
    assert list((tmp_path / ".staging").iterdir()) == []


def test_orphan_from_a_crash_is_replaced_not_merged(tmp_path):
    store = ArtifactStore(tmp_path)
    orphan = tmp_path / "models" / "m" / "1"
    orphan.mkdir(parents=True)
    (orphan / "model.onnx").write_bytes(b"half")
    (orphan / "stale.bin").write_bytes(b"x")
    with store.staged_copy(io.BytesIO(b"whole model"), limit=1024) as (path, _, _):
        key = store.put_model("m", 1, path, {"inputs": []})
    assert store.model_file(key).read_bytes() == b"whole model"
    assert not (orphan / "stale.bin").exists()


def test_a_version_keeps_its_other_files_beside_the_model(tmp_path):
    store = ArtifactStore(tmp_path)
    (tmp_path / "dec").write_bytes(b"decoder")
    (tmp_path / "tok").write_text("{}")
    with store.staged_copy(io.BytesIO(b"encoder"), limit=1024) as (path, _, _):
        key = store.put_model("t", 1, path, {"inputs": []},
                              {"decoder.onnx": tmp_path / "dec", "target.tokenizer.json": tmp_path / "tok"})
    folder = store.model_file(key).parent
    assert sorted(p.name for p in folder.iterdir()) == ["decoder.onnx", "model.onnx", "signature.json",
                                                        "target.tokenizer.json"]
    assert (folder / "decoder.onnx").read_bytes() == b"decoder"


@pytest.mark.parametrize("name", ["model.onnx", "signature.json", "../x", ".hidden"])
def test_extra_files_cannot_take_reserved_or_outside_names(tmp_path, name):
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(ValueError):
        ArtifactStore(tmp_path).put_model("t", 1, tmp_path / "f", {}, {name: tmp_path / "f"})


def test_keys_cannot_escape_the_store(tmp_path):
    with pytest.raises(ValueError):
        ArtifactStore(tmp_path).path("../outside")


def test_concurrent_uploads_get_distinct_versions(settings, tiny_onnx):
    """Eight uploads at once to one new name: versions 1..8, each with its own files."""
    results: list[int] = []
    errors: list[str] = []

    with TestClient(create_app(settings)) as c:
        def go():
            r = c.post("/v1/models/race/versions", files={"file": ("m.onnx", tiny_onnx)},
                       data={"task": "classification"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            (results.append(r.json()["version"]) if r.status_code == 201 else errors.append(r.text))

        threads = [threading.Thread(target=go) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(results) == list(range(1, 9))
        listed = c.get("/v1/models/race", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
        assert [v["version"] for v in listed["versions"]] == list(range(1, 9))
    for v in range(1, 9):
        assert (settings.resolved_artifact_root / f"models/race/{v}/model.onnx").read_bytes() == tiny_onnx
