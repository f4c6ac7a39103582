"""Classification datasets and configs at the API: the csv format, weights files riding in an archive,
WebP images, and 422s that name the entry (file and line) or the config key."""

import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import assert_problem, upload_dataset
from tests.workers import synthetic


def _csv_archive(n: int = 12, header: bool = True, rows: list[str] | None = None, extra: dict | None = None,
                 tar: bool = False) -> bytes:
    x, y = synthetic.images(n, 16)
    members = {f"data/img/{i}.png": synthetic.png(img) for i, img in enumerate(x)}
    lines = (["path,label"] if header else []) + [f"img/{i}.png,{synthetic.LABELS[k]}" for i, k in enumerate(y)]
    members["data/labels.csv"] = ("\n".join(lines + (rows or [])) + "\n").encode()
    members.update(extra or {})
    return synthetic.tar_gz(members) if tar else synthetic.zip_of(members)


def _upload(client, content: bytes, fmt: str | None = "csv", filename: str = "set.zip"):
    return upload_dataset(client, content, filename, "classification", fmt)


@pytest.mark.parametrize("tar", [False, True])
def test_a_csv_archive_uploads_with_its_statistics(client, tar):
    r = _upload(client, _csv_archive(12, tar=tar), filename="set.tar.gz" if tar else "set.zip")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["format"] == "csv"
    stats = body["stats"]
    assert stats["rows"] == 12 and stats["classes"] == 4 and stats["labels"] == sorted(synthetic.LABELS)
    assert stats["class_counts"] == {label: 3 for label in sorted(synthetic.LABELS)}
    assert stats["image_sizes"]["most_common"] == [16, 16] and stats["channels"] == 1


def test_a_csv_without_header_and_colour_webp_images_of_any_size_upload(client):
    rng = np.random.default_rng(0)
    members, lines = {}, []
    for i in range(6):
        img = rng.integers(0, 256, (10 + i, 12, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="WEBP" if i % 2 else "PNG", lossless=True)
        name = f"{i}.{'webp' if i % 2 else 'png'}"
        members[name] = buf.getvalue()
        lines.append(f"{name},{'cat' if i < 3 else 'dog'}")
    members["labels.csv"] = "\n".join(lines).encode()
    r = _upload(client, synthetic.zip_of(members))
    assert r.status_code == 201, r.text
    assert r.json()["stats"]["channels"] == 3 and r.json()["stats"]["image_sizes"]["max"] == [15, 12]


def test_an_imagefolder_archive_may_carry_a_weights_file(client):
    x, y = synthetic.images(8, 16)
    members = {f"{synthetic.LABELS[k]}/{i}.png": synthetic.png(img)
               for i, (img, k) in enumerate(zip(x, y, strict=True))}
    members["weights.safetensors"] = b"not read at upload"
    r = _upload(client, synthetic.zip_of(members), fmt=None)
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "imagefolder" and r.json()["stats"]["rows"] == 8


CORRUPT = b"\x89PNG\r\n\x1a\n but then nothing a decoder can use"


@pytest.mark.parametrize("rows, extra, needles", [
    (["img/99.png,north-west"], {}, ["entry 'data/labels.csv'", "line 14", "'img/99.png'", "not in the archive"]),
    (["img/1.png,north-west,extra"], {}, ["entry 'data/labels.csv'", "line 14", "expected 2 columns"]),
    (["img/1.png,"], {}, ["entry 'data/labels.csv'", "line 14", "label is empty"]),
    (["../../etc/passwd,x"], {}, ["entry 'data/labels.csv'", "line 14", "outside the archive"]),
    (["img/notes.txt,x"], {"data/img/notes.txt": b"hello"}, ["line 14", "not a .png"]),
    (["img/bad.png,north-west"], {"data/img/bad.png": CORRUPT}, ["entry 'data/img/bad.png'", "not a readable"]),
    ([], {"data/more.csv": b"a,b\n"}, ["2 .csv files", "keep exactly one"]),
])
def test_a_bad_csv_archive_is_a_422_naming_the_entry_and_line(client, rows, extra, needles):
    r = _upload(client, _csv_archive(12, rows=rows, extra=extra))
    body = assert_problem(r, 422, *needles)
    assert body.get("field") == "file"


def test_a_csv_archive_without_a_csv_or_with_one_class_is_a_422(client):
    assert_problem(_upload(client, synthetic.imagefolder_zip(8)), 422, "no .csv file")
    one = {"a.png": synthetic.png(np.zeros((4, 4), np.uint8)), "b.png": synthetic.png(np.ones((4, 4), np.uint8)),
           "l.csv": b"a.png,x\nb.png,x\n"}
    assert_problem(_upload(client, synthetic.zip_of(one)), 422, "entry 'l.csv'", "at least two classes")


def test_a_corrupt_image_in_an_imagefolder_archive_is_a_422_naming_it(client):
    members = {"a/1.png": synthetic.png(np.zeros((4, 4), np.uint8)), "b/2.jpg": CORRUPT}
    assert_problem(_upload(client, synthetic.zip_of(members), fmt="imagefolder"), 422, "entry 'b/2.jpg'")


@pytest.fixture
def dataset_id(client):
    r = client.post("/v1/datasets", files={"file": ("c.npz", synthetic.npz_bytes(n=40, size=16))},
                    data={"task": "classification"})
    assert r.status_code in (200, 201), r.text
    return r.json()["id"]


@pytest.mark.parametrize("config, needle", [
    ({"arch": "vgg"}, "config.arch"),
    ({"depth": 9}, "config.depth"),
    ({"scheduler": "step"}, "config.scheduler"),
    ({"optimizer": "lamb"}, "config.optimizer"),
    ({"label_smoothing": 1.0}, "config.label_smoothing"),
    ({"crop_padding": -1}, "config.crop_padding"),
    ({"patience": 0}, "config.patience"),
    ({"init_from": "../../secrets.pt"}, "config.init_from"),
    ({"init_from": "not a ref"}, "config.init_from"),
    ({"freeze_backbone": True}, "config.freeze_backbone"),
    ({"flip": "sometimes"}, "config.flip"),
    ({"mixup": 0.2}, "config.mixup"),
])
def test_bad_training_options_are_a_422_naming_the_key(client, dataset_id, config, needle):
    r = client.post("/v1/jobs", json={"task": "classification", "dataset_id": dataset_id, "config": config})
    assert_problem(r, 422, needle)


def test_the_new_training_options_are_accepted_with_their_defaults(client, dataset_id):
    config = {"arch": "resnet", "width": 8, "depth": 14, "optimizer": "sgd", "scheduler": "onecycle",
              "label_smoothing": 0.1, "crop_padding": 2, "flip": True, "amp": True, "patience": 3}
    r = client.post("/v1/jobs", json={"task": "classification", "dataset_id": dataset_id, "config": config})
    assert r.status_code == 202, r.text
    got = r.json()["config"]
    assert {k: got[k] for k in config} == config and got["epochs"] == 10


@pytest.mark.parametrize("ref, needle", [
    ("digits@production", "no model named 'digits'"),
    ("digits:3", "no model named 'digits'"),
    ("weights.safetensors", "single file"),
    ("top/weights.pt", "single file"),
])
def test_an_init_from_that_cannot_load_is_a_422_at_submit(client, dataset_id, ref, needle):
    r = client.post("/v1/jobs", json={"task": "classification", "dataset_id": dataset_id,
                                      "config": {"init_from": ref, "freeze_backbone": True}})
    assert_problem(r, 422, "config.init_from", needle)
