"""Compression bombs in every format a family reads in place (npz, a MovieLens zip or tar.gz) are held to
the same budget as archives the API unpacks: refused (413) from the sizes they declare, before inflating."""

import io
import zipfile

import numpy as np
import pytest

from models.common.errors import DatasetError, DatasetTooLarge
from models.common.npz import read_npz
from tests import hostile
from tests.conftest import assert_problem

BOMB_IMAGES = 1600  # 1600 x 256 x 256 zeros: 100 MiB that deflate to about 100 kB


@pytest.fixture(scope="module")
def npz_bomb() -> bytes:
    return hostile.npz_bomb(BOMB_IMAGES)


def test_an_npz_bomb_is_a_413_by_ratio(client, settings, npz_bomb):
    r = client.post("/v1/datasets", files={"file": ("bomb.npz", npz_bomb)}, data={"task": "classification"})
    body = assert_problem(r, 413, "over the budget", "times its size")
    assert body["limit_bytes"] == int(len(npz_bomb) * settings.dataset_max_ratio)
    assert client.get("/v1/datasets").json()["total"] == 0
    assert list((settings.resolved_artifact_root / ".staging").iterdir()) == []


def test_an_npz_within_the_ratio_but_over_the_total_is_a_413(client, settings):
    settings.dataset_max_bytes = 4096
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((40, 16, 16), np.uint8), y=np.arange(40) % 2)  # stored: ratio ~1, 10 kB
    assert_problem(client.post("/v1/datasets", files={"file": ("x.npz", buf.getvalue())},
                               data={"task": "classification"}), 413, "4096 bytes in all")


def test_an_npy_header_that_lies_about_its_shape_is_refused_before_allocating(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(hostile.npz_lying_header((10**6, 10**6, 10**6)))
    with pytest.raises(DatasetError, match="declares shape") as e:
        read_npz(path, 10**9)
    assert e.value.entry == "x" and not isinstance(e.value, DatasetTooLarge)


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DatasetError, match="pickle"):
        read_npz(path)


@pytest.mark.parametrize("make, filename", [
    (lambda: hostile.zip_bomb(64 << 20, "ml/ratings.csv"), "ml.zip"),
    (lambda: hostile.zip_bomb(64 << 20, "ml/other.bin"), "ml.zip"),  # a member never read still counts
    (lambda: hostile.tar_gz_bomb(64 << 20, "ml/ratings.csv"), "ml.tar.gz"),
])
def test_a_movielens_archive_bomb_is_a_413(client, make, filename):
    r = client.post("/v1/datasets", files={"file": (filename, make())},
                    data={"task": "recommendation", "format": "movielens"})
    assert_problem(r, 413, "times its size")


def test_a_plain_npz_still_loads(client):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for key, arr in {"x": np.full((20, 8, 8), 7, np.uint8), "y": np.arange(20) % 2}.items():
            b = io.BytesIO()
            np.save(b, arr)
            z.writestr(f"{key}.npy", b.getvalue())
    r = client.post("/v1/datasets", files={"file": ("ok.npz", buf.getvalue())}, data={"task": "classification"})
    assert r.status_code == 201, r.text
    assert r.json()["stats"]["rows"] == 20
