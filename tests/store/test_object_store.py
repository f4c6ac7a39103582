"""The object-store contract, run against both backends: the local folder (the embedded default) and an S3
bucket on a real S3-compatible server (moto's server mode)."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime

import pytest

from app.store.base import ArtifactCorrupt
from app.store.local import LocalObjects

MIB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def objects(request, tmp_path):
    if request.param == "local":
        return LocalObjects(tmp_path / "store")
    from app.store.s3 import S3Objects

    return S3Objects(request.getfixturevalue("s3_uri"), addressing_style="path", multipart_bytes=5 * MIB)


def _file(path, data: bytes):
    path.write_bytes(data)
    return path


def test_a_stored_file_comes_back_whole_and_checked(objects, tmp_path):
    src = _file(tmp_path / "src", b"weights" * 1000)
    sha = objects.put_file("models/m/1/model.onnx", src)
    assert sha == hashlib.sha256(src.read_bytes()).hexdigest()
    assert objects.exists("models/m/1/model.onnx") and not objects.exists("models/m/1/other")
    assert objects.stat("models/m/1/model.onnx").size == 7000 and objects.stat("models/m/1/other") is None

    objects.get_to_path("models/m/1/model.onnx", tmp_path / "out" / "got", sha)
    assert (tmp_path / "out" / "got").read_bytes() == src.read_bytes()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["got"]  # no part file left beside it
    objects.get_to_path("models/m/1/model.onnx", tmp_path / "again")  # checked against the stored sha256
    with pytest.raises(FileNotFoundError):
        objects.get_to_path("models/m/2/model.onnx", tmp_path / "none")


def test_listing_is_by_prefix_and_deleting_is_idempotent(objects, tmp_path):
    src = _file(tmp_path / "src", b"x")
    for key in ("datasets/a/upload", "datasets/ab/upload", "models/m/1/model.onnx", "runs/r/checkpoints/last.pt"):
        objects.put_file(key, src)
    listed = list(objects.list("datasets/a"))
    assert sorted(o.key for o in listed) == ["datasets/a/upload", "datasets/ab/upload"]
    assert all(o.size == 1 and o.modified <= datetime.now(UTC) for o in listed)
    assert [o.key for o in objects.list("datasets/a/")] == ["datasets/a/upload"]

    assert objects.delete_prefix("datasets/") == 2
    objects.delete(["datasets/a/upload", "never/was"])
    assert sorted(o.key for o in objects.list()) == ["models/m/1/model.onnx", "runs/r/checkpoints/last.pt"]


def test_a_key_cannot_leave_the_store(objects, tmp_path):
    src = _file(tmp_path / "src", b"x")
    for key in ("../outside", "/abs", "a//b", "a/./b", "", "a/../../b"):
        with pytest.raises(ValueError, match="not a store key"):
            objects.put_file(key, src)


def test_an_altered_object_is_refused_not_read(objects, tmp_path):
    src = _file(tmp_path / "src", b"the real bytes")
    sha = objects.put_file("datasets/d/upload", src)
    _tamper(objects, "datasets/d/upload", b"other bytes")
    # the sha256 the caller recorded, or (S3) the one stored with the object; a folder keeps no metadata
    for want in (sha,) if isinstance(objects, LocalObjects) else (sha, None):
        with pytest.raises(ArtifactCorrupt, match="does not match its recorded sha256"):
            objects.get_to_path("datasets/d/upload", tmp_path / "got", want)
        assert sorted(os.listdir(tmp_path)) == ["src", "store"] if isinstance(objects, LocalObjects) else ["src"]


def test_a_large_file_goes_up_in_parts_and_comes_back_whole(objects, tmp_path):
    data = os.urandom(11 * MIB)  # three parts of 5 MiB on S3
    src = _file(tmp_path / "big", data)
    sha = objects.put_file("runs/r/weights.pt", src)
    objects.get_to_path("runs/r/weights.pt", tmp_path / "back", sha)
    assert (tmp_path / "back").read_bytes() == data
    assert objects.pending_uploads() == []  # the multipart upload was completed, nothing left in flight


@pytest.mark.parametrize("size", [7, 11 * MIB], ids=["one-request", "in-ranges"])
def test_an_object_put_again_while_it_is_read_is_read_again_not_refused(s3_uri, tmp_path, size):
    """A run's checkpoint is put again every epoch while an API replica may be downloading it: the newer
    checkpoint arriving between the HEAD that gives the recorded sha256 and the GET (or between the ranges of a
    large download) is read again, never a 503 calling it altered."""
    from app.store.s3 import S3Objects

    reader, writer = (S3Objects(s3_uri, addressing_style="path", multipart_bytes=5 * MIB) for _ in range(2))
    key = "runs/r/checkpoints/last.pt"
    writer.put_file(key, _file(tmp_path / "epoch1", b"1" * size))
    newer = _file(tmp_path / "epoch2", b"2" * size)

    def another_worker_puts_the_next_epoch(**_):
        if not newer.with_suffix(".put").exists():
            newer.with_suffix(".put").touch()
            writer.put_file(key, newer)

    reader.client.meta.events.register("before-call.s3.GetObject", another_worker_puts_the_next_epoch)
    reader.get_to_path(key, tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == newer.read_bytes()


def _tamper(objects, key: str, data: bytes) -> None:
    if isinstance(objects, LocalObjects):
        (objects.root / key).write_bytes(data)
        return
    head = objects.client.head_object(Bucket=objects.bucket, Key=objects.prefix + key)
    objects.client.put_object(Bucket=objects.bucket, Key=objects.prefix + key, Body=data, Metadata=head["Metadata"])


def test_s3_addresses_and_settings():
    from app.settings import Settings
    from app.store.s3 import parse_uri

    assert parse_uri("s3://b/some/prefix/") == ("b", "some/prefix/") and parse_uri("s3://b") == ("b", "")
    s = Settings(artifact_root="s3://bucket/p", _env_file=None)
    assert s.artifact_remote == "s3://bucket/p" and s.resolved_artifact_root.parts[-2:] == ("cache", "artifacts")
    assert Settings(_env_file=None).artifact_remote is None
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        Settings(artifact_root="gs://bucket/p", _env_file=None)
    with pytest.raises(ValueError, match="auto, path or virtual"):
        Settings(s3_addressing_style="sideways", _env_file=None)
