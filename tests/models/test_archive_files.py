"""How the image families find the files an annotation names inside an unpacked archive."""

import numpy as np
import pytest
from PIL import Image

from models.common import archive_files as A
from models.common.errors import DatasetError


def tree(tmp_path, names):
    for n in names:
        p = tmp_path / n
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((4, 6), 200, np.uint8)).save(p, format="PNG")
    return A.listing(tmp_path)


def test_a_zip_made_on_a_mac_lists_only_the_real_files(tmp_path):
    files = tree(tmp_path, ["data/images/a.png", "__MACOSX/data/images/._a.png", "data/images/._b.png"])
    assert list(files) == ["data/images/a.png"]


def test_find_follows_the_bases_then_a_unique_suffix_then_loosely_a_unique_base_name(tmp_path):
    files = tree(tmp_path, ["ann/images/a.png", "top/x/b.png", "elsewhere/c.png", "one/d.png", "two/d.png"])
    names = A.by_name(files)
    assert A.find(files, names, ["ann", "."], "images/a.png") == "ann/images/a.png"
    assert A.find(files, names, ["."], "x/b.png") == "top/x/b.png"  # a top folder the JSON omits
    assert A.find(files, names, ["."], "train/c.png") is None
    assert A.find(files, names, ["."], "train/c.png", loose=True) == "elsewhere/c.png"
    assert A.find(files, names, ["."], "d.png", loose=True) is None  # two of them: ambiguous


def test_read_image_keeps_grey_on_request_and_names_the_entry_of_a_broken_file(tmp_path):
    files = tree(tmp_path, ["g.png"])
    assert A.read_image(files["g.png"], "g.png", None).shape == (4, 6)
    assert A.read_image(files["g.png"], "g.png").shape == (4, 6, 3)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="not a decodable image") as e:
        A.read_image(tmp_path / "bad.png", "imgs/bad.png")
    assert e.value.entry == "imgs/bad.png"
    with pytest.raises(DatasetError, match="over 10"):
        A.read_image(files["g.png"], "g.png", max_pixels=10)


def test_annotation_json_is_the_one_file_or_a_train_val_pair_and_says_what_is_wrong(tmp_path):
    def files(folder, docs):
        for name, text in docs.items():
            (tmp_path / folder / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / folder / name).write_text(text)
        return A.listing(tmp_path / folder)

    wanted = lambda doc: isinstance(doc, dict) and "images" in doc  # noqa: E731
    one = files("one", {"a/instances.json": '{"images": []}', "a/other.json": "[]"})
    assert A.annotation_json(one, wanted, "COCO JSON", "images") == (("a/instances.json", {"images": []}), None)
    pair = files("pair", {"a/instances_val.json": '{"images": [1]}', "a/instances_train.json": '{"images": [2]}'})
    train, val = A.annotation_json(pair, wanted, "COCO JSON", "images")
    assert (train[0], val[0]) == ("a/instances_train.json", "a/instances_val.json")
    three = files("pair", {"a/more_train.json": '{"images": []}'})
    with pytest.raises(DatasetError, match=r"holds 3 COCO JSON files \(a/instances_train.json, "):
        A.annotation_json(three, wanted, "COCO JSON", "images")
    with pytest.raises(DatasetError, match=r"holds no COCO JSON \(an object with images\)"):
        A.annotation_json(one, lambda doc: False, "COCO JSON", "an object with images")
    broken = files("broken", {"a/broken.json": "{"})
    with pytest.raises(DatasetError, match="not valid JSON") as e:
        A.annotation_json(broken, wanted, "COCO JSON", "images")
    assert e.value.entry == "a/broken.json"
