"""Every object belongs to a row or a live run: the sweep removes what a crash, a failed job, a rolled-back upload
or an abandoned multipart upload left in the bucket, once older than the grace period, and keeps the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from app.db.session import make_engine, make_sessionmaker
from app.db.tables import TrainingRun
from app.store import open_store
from app.store.sweep import sweep
from tests.conftest import upload, upload_dataset
from tests.store.conftest import keys_in
from tests.workers import synthetic

LATER = datetime.now(UTC) + timedelta(hours=2)


def _put(bucket, key: str, body: bytes = b"litter") -> None:
    client, name, prefix = bucket
    client.put_object(Bucket=name, Key=prefix + key, Body=body)


def test_the_sweep_removes_strays_and_keeps_what_rows_and_live_runs_own(api, bucket, database_url, tiny_onnx):
    dataset = upload_dataset(api, synthetic.npz_bytes(n=32, size=8), "d.npz", "classification").json()
    upload(api, "kept", tiny_onnx)
    failed = api.post("/v1/jobs", json={"task": "classification", "dataset_id": dataset["id"]}).json()
    queued = api.post("/v1/jobs", json={"task": "classification", "dataset_id": dataset["id"]}).json()
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        s.get(TrainingRun, failed["id"]).status = "failed"
        s.commit()
    owned = sorted([f"datasets/{dataset['sha256']}/upload", "models/kept/1/model.onnx",
                    "models/kept/1/signature.json", f"runs/{queued['id']}/checkpoints/last.pt"])
    _put(bucket, f"runs/{queued['id']}/checkpoints/last.pt")  # a live run's checkpoint
    _put(bucket, f"runs/{failed['id']}/checkpoints/last.pt")  # a failed job's leftovers
    _put(bucket, "datasets/0123abcd/upload")  # an upload whose row never committed
    _put(bucket, "models/kept/2/model.onnx")  # a version rolled back after its files went up
    _put(bucket, "someone-elses/file")  # not under a prefix of dlserve's: not ours to judge
    store = open_store(api.settings)
    young = sweep(store.objects, sessions, grace_s=3600)  # everything was written just now: nothing goes
    assert young.removed == [] and young.aborted == []

    # (moto dates every multipart upload 2010-11-10, so the age of one is not tested here: it is always stale)
    client, name, prefix = bucket
    half = client.create_multipart_upload(Bucket=name, Key=prefix + "models/big/1/model.onnx")["UploadId"]
    client.upload_part(Bucket=name, Key=prefix + "models/big/1/model.onnx", UploadId=half, PartNumber=1, Body=b"x")

    report = sweep(store.objects, sessions, grace_s=3600, now=LATER)
    assert sorted(report.removed) == sorted([f"runs/{failed['id']}/checkpoints/last.pt", "datasets/0123abcd/upload",
                                             "models/kept/2/model.onnx"])
    assert report.aborted == ["models/big/1/model.onnx"]
    assert keys_in(bucket) == sorted([*owned, "someone-elses/file"])
    assert client.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    engine.dispose()

    # what is left still works: the dataset trains elsewhere, the version serves
    assert api.get("/v1/models/kept/versions/1/artifact").content == tiny_onnx


def test_dlserve_store_sweep_on_the_servers_machine(api, bucket, monkeypatch, database_url, s3_uri, tmp_path):
    from app.cli import cli

    _put(bucket, "datasets/feed/upload")
    for name, value in (("DLSERVE_HOME", str(tmp_path / "cli")), ("DLSERVE_DATABASE_URL", database_url),
                        ("DLSERVE_ARTIFACT_ROOT", s3_uri), ("DLSERVE_S3_ADDRESSING_STYLE", "path")):
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["store", "sweep", "--grace-s", "0"])
    assert result.exit_code == 0, result.output
    assert "removed 1 stray object(s)" in result.output and "datasets/feed/upload" in result.output
    assert keys_in(bucket) == []


def test_the_sweep_judges_the_local_folder_the_same_way(client, settings, database_url, tiny_onnx):
    dataset = upload_dataset(client, synthetic.npz_bytes(n=32, size=8), "d.npz", "classification").json()
    upload(client, "kept", tiny_onnx)
    failed = client.post("/v1/jobs", json={"task": "classification", "dataset_id": dataset["id"]}).json()
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        s.get(TrainingRun, failed["id"]).status = "failed"
        s.commit()
    root = settings.resolved_artifact_root
    litter = [f"runs/{failed['id']}/checkpoints/last.pt", "datasets/0123abcd/data.npz", "models/kept/2/model.onnx"]
    for key in litter:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(b"litter")

    report = sweep(open_store(settings).objects, sessions, grace_s=3600, now=LATER)
    engine.dispose()
    assert sorted(report.removed) == sorted(litter)
    assert not (root / "datasets/0123abcd").exists() and (root / "models").is_dir()
    assert (root / f"datasets/{dataset['sha256']}/data.npz").is_file()
    assert client.get("/v1/models/kept/versions/1/artifact").content == tiny_onnx
