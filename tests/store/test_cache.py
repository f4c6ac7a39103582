"""A host's cache of the object store: bounded, least recently used out first, never an entry a live process
has pinned; and a dataset on S3 is one object that a worker downloads, checks and unpacks into it."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from app.db.session import make_engine, make_sessionmaker
from app.db.tables import Dataset, TrainingRun
from app.store.cache import Cache, CacheFull
from tests.conftest import upload_dataset
from tests.store.conftest import keys_in, s3_settings
from tests.workers import synthetic

# The subject is the store and the host's cache, not the database: one backend (tests/conftest.py).
pytestmark = pytest.mark.one_backend


def _build(tmp_path, name: str, size: int):
    folder = tmp_path / "staging" / name
    folder.mkdir(parents=True)
    (folder / "data").write_bytes(b"x" * size)
    return folder


def _entries(cache: Cache) -> list[str]:
    return sorted(f.relative_to(cache.root).as_posix() for _, _, f in cache.entries())


def test_the_cache_evicts_the_least_recently_used_entry_that_is_not_pinned(tmp_path):
    cache = Cache(tmp_path / "cache", max_bytes=2500)
    a, b, c = (cache.root / f"datasets/{n}" for n in "abc")
    cache.admit(_build(tmp_path, "a", 1000), a)
    cache.admit(_build(tmp_path, "b", 1000), b)
    os.utime(a / ".used", (time.time() - 60, time.time() - 60))
    os.utime(b / ".used", (time.time() - 30, time.time() - 30))
    cache.pin(a)  # oldest, but in use by this (live) process
    cache.admit(_build(tmp_path, "c", 1000), c)  # 3000 bytes is over 2500: b goes, not a
    assert _entries(cache) == ["datasets/a", "datasets/c"]
    assert (a / "data").read_bytes() == b"x" * 1000 and not b.exists()


def test_a_pin_of_a_dead_process_pins_nothing(tmp_path):
    cache = Cache(tmp_path / "cache", max_bytes=1500)
    a = cache.root / "datasets/a"
    cache.admit(_build(tmp_path, "a", 1000), a)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (a / f".pin-{dead.pid}-0").touch()  # a worker killed mid-run
    cache.admit(_build(tmp_path, "b", 1000), cache.root / "datasets/b")
    assert _entries(cache) == ["datasets/b"]


def test_an_entry_that_cannot_fit_beside_the_pinned_ones_is_refused(tmp_path):
    cache = Cache(tmp_path / "cache", max_bytes=1500)
    a = cache.root / "datasets/a"
    cache.admit(_build(tmp_path, "a", 1000), a)
    cache.pin(a)
    with pytest.raises(CacheFull, match="DLSERVE_CACHE_MAX_BYTES=1500.*datasets/b"):
        cache.admit(_build(tmp_path, "b", 1000), cache.root / "datasets/b")
    assert _entries(cache) == ["datasets/a"] and not (cache.root / "datasets/b").exists()


def test_a_dataset_is_one_object_that_a_worker_unpacks_into_its_own_cache(api, bucket, tmp_path, database_url,
                                                                           s3_uri):
    from app.datasets.service import dataset_path
    from app.store import open_store

    content = synthetic.imagefolder_zip(n=40, size=8)
    r = upload_dataset(api, content, "shapes.zip", "classification")
    assert r.status_code == 201, r.text
    sha = r.json()["sha256"]
    assert keys_in(bucket) == [f"datasets/{sha}/upload"]  # the archive, not its 40 files

    worker = s3_settings(tmp_path / "worker", database_url, s3_uri)  # another host: nothing on its disk
    store = open_store(worker)
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as s:
        row = s.get(Dataset, r.json()["id"])
        path = dataset_path(store, row, worker)
    engine.dispose()
    assert path.is_relative_to(tmp_path / "worker" / "cache") and len(list(path.rglob("*.png"))) == 40
    store.pin(row.uri)
    assert store.cache.pinned(store.path(row.uri))
    store.release_pins()
    assert not store.cache.pinned(store.path(row.uri))


def test_a_dataset_altered_in_the_bucket_fails_its_job_with_the_reason(api, bucket, tmp_path, database_url, s3_uri):
    from workers.runner import run_training

    r = upload_dataset(api, synthetic.npz_bytes(n=64, size=8), "corners.npz", "classification")
    sha = r.json()["sha256"]
    client, name, prefix = bucket
    client.put_object(Bucket=name, Key=f"{prefix}datasets/{sha}/upload", Body=b"not the uploaded bytes")
    job = api.post("/v1/jobs", json={"task": "classification", "dataset_id": r.json()["id"],
                                     "config": {"epochs": 1}}).json()

    worker = s3_settings(tmp_path / "worker", database_url, s3_uri)
    assert run_training(job["id"], worker) == "failed"
    done = api.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "failed" and "does not match its recorded sha256" in done["error"]
    assert f"datasets/{sha}/upload" in done["error"] and "altered or damaged" in done["error"]
    assert not (tmp_path / "worker" / "cache" / "artifacts" / "datasets" / sha).exists()
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as s:
        assert s.get(TrainingRun, job["id"]).status == "failed"
    engine.dispose()


def test_a_version_altered_in_the_bucket_is_refused_by_the_api_not_served(api, bucket, tiny_onnx):
    from tests.conftest import assert_problem, upload

    upload(api, "m", tiny_onnx)
    store = api.app.state.store
    store.cache.evict(store.path("models/m/1"))  # as on a host that never had it
    client, name, prefix = bucket
    client.put_object(Bucket=name, Key=f"{prefix}models/m/1/model.onnx", Body=tiny_onnx + b"\0")
    body = assert_problem(api.get("/v1/models/m/versions/1/artifact"), 503, "models/m/1/model.onnx",
                          "does not match its recorded sha256")
    assert str(store.root) not in body["detail"]
    assert not (store.path("models/m/1") / "model.onnx").exists()


def test_a_host_never_serves_its_copy_of_other_bytes_under_the_same_version(s3_uri, tmp_path, database_url):
    """A version number used again (its first registration crashed before its commit) is fetched again."""
    import hashlib

    from app.store import open_store

    a, b = (open_store(s3_settings(tmp_path / h, database_url, s3_uri)) for h in ("a", "b"))
    a.ensure()
    for n, body in enumerate((b"first bytes", b"second bytes")):
        staged = tmp_path / f"model-{n}.onnx"
        staged.write_bytes(body)
        sha = hashlib.sha256(body).hexdigest()
        a.put_model("m", 1, staged, {"sha256": sha}, {"vocab.txt": _file(tmp_path / f"v{n}", b"v")} if not n else {})
        assert b.model_file("models/m/1", sha).read_bytes() == body
    assert not (b.path("models/m/1") / "vocab.txt").exists()  # nothing of the first registration is left
    assert sorted(o.key for o in a.remote.list("models/")) == ["models/m/1/model.onnx", "models/m/1/signature.json"]


def _file(path, data: bytes):
    path.write_bytes(data)
    return path


def test_a_bucket_that_cannot_be_used_is_a_503_saying_so_and_the_api_is_not_ready(s3_uri, tmp_path, database_url):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.conftest import ADMIN_KEY, assert_problem

    settings = s3_settings(tmp_path / "api", database_url, "s3://no-such-bucket-here/dlserve")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        r = upload_dataset(c, synthetic.npz_bytes(n=32, size=8), "d.npz", "classification")
        assert_problem(r, 503, "the object store s3://no-such-bucket-here/dlserve refused the request")
        assert r.headers["retry-after"]
        assert c.get("/v1/datasets").json()["total"] == 0  # no row for what could not be stored
        body = assert_problem(c.get("/readyz"), 503)
        assert "NoSuchBucket" in body["checks"]["artifacts"]
