"""Datasets as a client sees them: upload, statistics, the same bytes twice, list/get/delete, and a 422
that points at the bad record."""

import hashlib
import io

import numpy as np
import pytest

from tests.conftest import assert_problem, upload_dataset
from tests.workers import synthetic


def upload(client, content: bytes, filename: str, task: str = "classification", **fields):
    return upload_dataset(client, content, filename, task, **fields)


def test_imagefolder_zip_is_stored_by_hash_with_its_statistics(client, settings):
    content = synthetic.imagefolder_zip(n=40, size=16)
    r = upload(client, content, "corners.zip", format="imagefolder")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["sha256"] == hashlib.sha256(content).hexdigest() and body["size_bytes"] == len(content)
    assert body["name"] == "corners" and body["format"] == "imagefolder" and body["task"] == "classification"
    assert r.headers["location"] == f"/v1/datasets/{body['id']}"
    stats = body["stats"]
    assert stats["rows"] == 40 and stats["classes"] == 4 and stats["labels"] == sorted(synthetic.LABELS)
    assert stats["class_counts"] == {label: 10 for label in synthetic.LABELS}
    assert stats["image_sizes"]["most_common"] == [16, 16] and stats["channels"] == 1
    files = settings.resolved_artifact_root / "datasets" / body["sha256"] / "files"
    assert len(list(files.rglob("*.png"))) == 40

    # the same bytes again are the same dataset
    again = upload(client, content, "renamed.zip")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert client.get("/v1/datasets").json()["total"] == 1


def test_archive_with_one_enclosing_folder_and_colour_images(client):
    rgb = np.zeros((20, 12, 3), np.uint8)
    rgb[..., 0] = 255
    grey = np.full((10, 10), 128, np.uint8)
    members = {"pets/cat/a.png": synthetic.png(rgb), "pets/cat/b.jpg": _jpeg(rgb),
               "pets/dog/c.png": synthetic.png(grey), "pets/dog/.DS_Store": b"junk", "__MACOSX/pets/._a.png": b"junk"}
    r = upload(client, synthetic.tar_gz(members), "pets.tar.gz")  # format guessed from the name
    assert r.status_code == 201, r.text
    stats = r.json()["stats"]
    assert r.json()["format"] == "imagefolder"
    assert stats["labels"] == ["cat", "dog"] and stats["rows"] == 3 and stats["channels"] == 3
    assert stats["image_sizes"] == {"min": [10, 10], "max": [20, 12], "most_common": [20, 12]}


def _jpeg(img):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG")
    return buf.getvalue()


def test_npz_in_both_layouts(client):
    r = upload(client, synthetic.npz_bytes(n=30, size=12), "plain.npz")
    assert r.status_code == 201, r.text
    assert r.json()["stats"]["rows"] == 30 and r.json()["stats"]["image_sizes"]["most_common"] == [12, 12]

    x, y = synthetic.images(50, 10)
    buf = io.BytesIO()
    np.savez(buf, x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    r = upload(client, buf.getvalue(), "keras.npz", format="npz")
    assert r.status_code == 201, r.text
    assert r.json()["stats"]["splits"] == {"train": 40, "test": 10}


@pytest.mark.parametrize("members, needle", [
    ({"a/1.png": synthetic.png(np.zeros((4, 4), np.uint8)), "b/2.png": b"not a png at all"}, "entry 'b/2.png'"),
    ({"a/1.png": synthetic.png(np.zeros((4, 4), np.uint8)), "b/notes.txt": b"hi"}, "entry 'b/notes.txt'"),
    ({"a/1.png": synthetic.png(np.zeros((4, 4), np.uint8)), "readme.png": b"x"}, "entry 'readme.png'"),
    ({"a/1.png": synthetic.png(np.zeros((4, 4), np.uint8))}, "at least two"),
    ({}, "no images"),
])
def test_bad_imagefolder_names_the_entry(client, members, needle):
    r = upload(client, synthetic.zip_of(members), "bad.zip")
    body = assert_problem(r, 422, needle)
    assert body["detail"].startswith("field 'file'")
    assert client.get("/v1/datasets").json()["total"] == 0  # nothing half-made


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize("content, needle", [
    (_npz(x=np.zeros((3, 4, 4), np.float32), y=np.arange(3)), "entry 'x': pixels must be uint8"),
    (_npz(x=np.zeros((3, 4, 4), np.uint8), y=np.arange(2)), "entry 'y': 2 labels for 3 images"),
    (_npz(x=np.zeros((3, 4, 4), np.uint8), y=np.array([0.0, 1.5, 1.0])), "entry 'y'"),
    (_npz(x=np.zeros((3, 4, 4, 2), np.uint8), y=np.arange(3)), "1 or 3 channels"),
    (_npz(images=np.zeros((3, 4, 4), np.uint8)), "expected x and y"),
    (_npz(x=np.zeros((3, 4, 4), np.uint8), y=np.zeros(3, np.int64)), "at least two classes"),
    (_npz(x=np.zeros((2, 4, 4), np.uint8), y=np.array([{"a": 1}, {"b": 2}], dtype=object)), "entry 'y'"),
    (b"PK\x03\x04 broken", "not a"),
])
def test_bad_npz_names_the_array(client, content, needle):
    assert_problem(upload(client, content, "bad.npz"), 422, needle)


@pytest.mark.parametrize("fields, filename, needle", [
    ({"task": "poetry"}, "a.zip", "'poetry' is not a task"),
    ({"format": "yolo"}, "a.zip", "'yolo' is not a classification format"),
    ({}, "data.bin", "field 'format' is needed"),
    ({"task": "translation", "format": "coco"}, "a.zip", "'coco' is not a translation format"),
])
def test_upload_field_errors(client, fields, filename, needle):
    data = {"task": "classification", **fields}
    r = client.post("/v1/datasets", files={"file": (filename, b"whatever")}, data=data)
    assert_problem(r, 422, needle)


def test_same_bytes_as_another_format_conflict(client):
    content = synthetic.npz_bytes(n=8, size=8)
    assert upload(client, content, "a.npz").status_code == 201
    # an npz is a zip too: as an imagefolder the same bytes would be another dataset
    assert_problem(upload(client, content, "a.zip", format="imagefolder"), 409, "already dataset")


def test_list_get_and_delete(client, settings):
    a = upload(client, synthetic.npz_bytes(n=8, size=8, seed=1), "a.npz").json()
    b = upload(client, synthetic.imagefolder_zip(n=8, size=8), "b.zip").json()
    page = client.get("/v1/datasets", params={"limit": 1}).json()
    assert page["total"] == 2 and len(page["items"]) == 1 and page["items"][0]["id"] == b["id"]  # newest first
    assert client.get("/v1/datasets", params={"limit": 1, "offset": 1}).json()["items"][0]["id"] == a["id"]
    assert client.get(f"/v1/datasets/{a['id']}").json()["stats"]["rows"] == 8
    assert_problem(client.get("/v1/datasets/nope"), 404, "no dataset")

    assert client.delete(f"/v1/datasets/{a['id']}").status_code == 204
    assert not (settings.resolved_artifact_root / "datasets" / a["sha256"]).exists()
    assert_problem(client.get(f"/v1/datasets/{a['id']}"), 404)
    assert_problem(client.delete(f"/v1/datasets/{a['id']}"), 404)


def test_delete_is_refused_while_a_job_uses_the_dataset(client, settings):
    ds = upload(client, synthetic.npz_bytes(n=8, size=8), "a.npz").json()
    job = client.post("/v1/jobs", json={"task": "classification", "dataset_id": ds["id"]}).json()
    body = assert_problem(client.delete(f"/v1/datasets/{ds['id']}"), 409, job["id"])
    assert body["jobs"] == [job["id"]]
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"

    # once no run needs it, it goes; the finished run keeps its history without the link
    assert client.delete(f"/v1/datasets/{ds['id']}").status_code == 204
    after = client.get(f"/v1/jobs/{job['id']}").json()
    assert after["status"] == "cancelled" and after["dataset_id"] is None


def test_datasets_need_the_read_scope_to_list_and_train_to_upload(client, settings):
    from app.auth import create_key
    from app.db.session import make_engine, make_sessionmaker

    with make_sessionmaker(make_engine(settings.resolved_database_url))() as s:
        _, key = create_key(s, ["predict"])
        s.commit()
    assert_problem(client.get("/v1/datasets", headers={"Authorization": f"Bearer {key}"}), 403, "'read' scope")
    assert_problem(client.post("/v1/datasets", files={"file": ("a.csv", b"a")}, data={"task": "fraud"},
                               headers={"Authorization": f"Bearer {key}"}), 403, "'train' scope")
    assert_problem(client.get("/v1/datasets", headers={"Authorization": ""}), 401)
