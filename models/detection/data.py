"""Object-detection datasets (numpy and Pillow only: the API validates uploads with this module).

Formats (both are archives, zip/tar/tar.gz, that the app unpacks safely before this module reads them):
  coco  a COCO instances JSON (images, annotations with bbox [x, y, w, h] in pixels, categories) and the
        images it names, found by their file_name relative to the JSON, its parent or the archive root.
        Two JSON files whose names hold "train" and "val" are the training and validation splits.
        iscrowd annotations are left out.
  yolo  images with one .txt label file each ("class cx cy w h" per line, normalised to [0, 1]), beside
        the image or in the matching labels/ folder (images/x.jpg <-> labels/x.txt), and a names file:
        data.yaml / dataset.yaml (names:), classes.txt or *.names (one name a line). Images under a
        "val"/"valid" folder validate; an image without a label file holds no objects.

Every problem is a DatasetError naming the entry (the file in the archive, and the record in it): a label
pointing at a missing image, a box outside its image, an unknown category, a corrupt image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.common import archive_files
from models.common.errors import DatasetError
from models.common.images import DEFAULT_MAX_PIXELS, pillow_reason

FORMATS = {
    "coco": "zip, tar or tar.gz archive of a COCO instances JSON and the images it names",
    "yolo": "zip, tar or tar.gz archive of images, YOLO .txt labels and a names file (data.yaml or classes.txt)",
}
ARCHIVE_FORMATS = frozenset(FORMATS)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
TOLERANCE_PX = 1.0  # boxes may overhang their image by this much (rounding in other tools); they are clipped


@dataclass
class Record:
    path: Path
    entry: str  # the image's path in the archive
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # xyxy pixels
    classes: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))  # indices into labels


@dataclass
class Parsed:
    labels: list[str]
    train: list[Record]
    val: list[Record] | None = None  # a split the dataset names itself


def guess_format(filename: str) -> str | None:
    return None  # both formats are archives; the upload says which


def validate(path: Path, fmt: str, max_bytes: int | None = None) -> dict[str, Any]:
    """Parses the annotations and decodes every image; summary statistics, or DatasetError at the first bad one."""
    parsed = parse(Path(path), fmt)
    records = parsed.train + (parsed.val or [])
    for r in records:
        read_image(r)
    counts = np.bincount(np.concatenate([r.classes for r in records] or [np.zeros(0, np.int64)]),
                         minlength=len(parsed.labels))
    return {"images": len(records), "train_images": len(parsed.train),
            "val_images": len(parsed.val) if parsed.val is not None else None,
            "boxes": int(counts.sum()), "categories": len(parsed.labels),
            "labels": parsed.labels[:100], "boxes_per_label": {parsed.labels[i]: int(c) for i, c in enumerate(counts)
                                                              if i < 100}}


def parse(path: Path, fmt: str) -> Parsed:
    if fmt == "coco":
        return _parse_coco(path)
    if fmt == "yolo":
        return _parse_yolo(path)
    raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def read_image(r: Record, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """uint8 RGB [H, W, 3]; DatasetError naming the entry when it does not decode or its size differs."""
    arr = archive_files.read_image(r.path, r.entry, "RGB", max_pixels)
    if arr.shape[:2] != (r.height, r.width):
        raise DatasetError(f"the image is {arr.shape[1]}x{arr.shape[0]} but its annotations say "
                           f"{r.width}x{r.height}", r.entry)
    return arr


def _image_size(p: Path, entry: str) -> tuple[int, int]:
    try:
        with Image.open(p) as img:
            return img.size
    except Exception as e:
        raise DatasetError(f"not a decodable image: {pillow_reason(e)}", entry) from e


def _check_box(x1: float, y1: float, x2: float, y2: float, w: int, h: int, where: str) -> None:
    if not all(np.isfinite([x1, y1, x2, y2])):
        raise DatasetError("a box coordinate is not a finite number", where)
    if x2 <= x1 or y2 <= y1:
        raise DatasetError(f"the box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] (x1, y1, x2, y2) has no area", where)
    t = TOLERANCE_PX
    if x1 < -t or y1 < -t or x2 > w + t or y2 > h + t:
        raise DatasetError(f"the box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] (x1, y1, x2, y2) is outside its image "
                           f"of {w}x{h} pixels", where)


# -- COCO ---------------------------------------------------------------------------------------------
def _parse_coco(root: Path) -> Parsed:
    files = archive_files.listing(root)
    train, val = archive_files.annotation_json(
        files, lambda doc: isinstance(doc, dict) and {"images", "annotations", "categories"} <= doc.keys(),
        "COCO instances JSON", "an object with images, annotations and categories")
    labels, train_records, cats = _coco_split(root, files, *train, None)
    if val is None:
        return Parsed(labels, train_records)
    _, val_records, _ = _coco_split(root, files, *val, cats)
    return Parsed(labels, train_records, val_records)


def _coco_split(root: Path, files: dict[str, Path], name: str, doc: dict, cats: list | None):
    categories = doc["categories"]
    if not isinstance(categories, list) or not categories:
        raise DatasetError("'categories' must be a non-empty list", name)
    try:
        mine = sorted((int(c["id"]), str(c["name"])) for c in categories)
    except (TypeError, KeyError, ValueError) as e:
        raise DatasetError(f"every category needs an integer id and a name ({e})", f"{name}: categories") from e
    if cats is not None and mine != cats:
        raise DatasetError("its categories differ from the training JSON's", name)
    index = {cid: i for i, (cid, _) in enumerate(mine)}
    records: dict[Any, Record] = {}
    for where, image_id, im, entry in archive_files.coco_images(files, name, doc):
        p = files[entry]
        w, h = _image_size(p, entry)
        if (im.get("width") not in (None, w)) or (im.get("height") not in (None, h)):
            raise DatasetError(f"the JSON says {im.get('width')}x{im.get('height')} but {entry} is {w}x{h}", where)
        records[image_id] = Record(p, entry, w, h)
    boxes: dict[Any, list] = {k: [] for k in records}
    for i, a in enumerate(doc["annotations"]):
        where = f"{name}: annotations[{i}]" + (f" (id {a['id']})" if isinstance(a, dict) and "id" in a else "")
        if not isinstance(a, dict) or "bbox" not in a or "image_id" not in a or "category_id" not in a:
            raise DatasetError("every annotation needs image_id, category_id and bbox", where)
        if a.get("iscrowd"):
            continue
        r = records.get(a["image_id"])
        if r is None:
            raise DatasetError(f"image_id {a['image_id']!r} is not among the JSON's images", where)
        if a["category_id"] not in index:
            raise DatasetError(f"unknown category id {a['category_id']!r}; the JSON's categories are "
                               f"{sorted(index)[:20]}", where)
        try:
            x, y, bw, bh = (float(v) for v in a["bbox"])
        except (TypeError, ValueError) as e:
            raise DatasetError(f"bbox must be [x, y, width, height] ({e})", where) from e
        _check_box(x, y, x + bw, y + bh, r.width, r.height, f"{where} on {r.entry}")
        boxes[a["image_id"]].append((x, y, x + bw, y + bh, index[a["category_id"]]))
    for k, r in records.items():
        _set_boxes(r, boxes[k])
    return [n for _, n in mine], list(records.values()), mine


def _set_boxes(r: Record, rows: list) -> None:
    if rows:
        arr = np.asarray(rows, np.float64)
        r.boxes = np.clip(arr[:, :4], 0, [r.width, r.height, r.width, r.height]).astype(np.float32)
        r.classes = arr[:, 4].astype(np.int64)


# -- YOLO ---------------------------------------------------------------------------------------------
def _parse_yolo(root: Path) -> Parsed:
    files = archive_files.listing(root)
    labels = _yolo_names(files)
    names_files = {k for k in files if Path(k).name.lower() in ("classes.txt",) or k.lower().endswith(".names")}
    images = {k: p for k, p in files.items() if Path(k).suffix.lower() in IMAGE_SUFFIXES}
    by_label = {}
    for k in images:
        stem = k.rsplit(".", 1)[0]
        by_label[f"{stem}.txt"] = k
        if "images/" in f"/{k}" or k.startswith("images/"):
            by_label[re.sub(r"(^|/)images/", r"\1labels/", stem, count=1) + ".txt"] = k
    owner: dict[str, str] = {}
    for k in files:
        if not k.lower().endswith(".txt") or k in names_files or Path(k).name.lower() in ("readme.txt",):
            continue
        img = by_label.get(k)
        if img is None:
            raise DatasetError(f"label file with no image beside it (looked for {Path(k).stem}.png/.jpg "
                               "beside it or under images/)", k)
        owner[img] = k
    if not images:
        raise DatasetError("the archive holds no images")
    train, val = [], []
    for k, p in images.items():
        w, h = _image_size(p, k)
        r = Record(p, k, w, h)
        if k in owner:
            _set_boxes(r, _yolo_rows(files[owner[k]], owner[k], w, h, len(labels)))
        parts = {s.lower() for s in Path(k).parts[:-1]}
        (val if parts & {"val", "valid", "validation"} else train).append(r)
    if not train:
        raise DatasetError("every image is in a validation folder; nothing is left to train on")
    return Parsed(labels, train, val or None)


def _yolo_rows(p: Path, entry: str, w: int, h: int, n_labels: int) -> list:
    rows = []
    for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{entry}: line {n}"
        if len(parts) != 5:
            raise DatasetError(f"expected 'class cx cy w h', got {line.strip()[:80]!r}", where)
        try:
            cls = int(parts[0])
            cx, cy, bw, bh = (float(v) for v in parts[1:])
        except ValueError as e:
            raise DatasetError(f"expected 'class cx cy w h' with an integer class ({e})", where) from e
        if not 0 <= cls < n_labels:
            raise DatasetError(f"unknown category id {cls}; the names file lists {n_labels} (0..{n_labels - 1})", where)
        x1, y1, x2, y2 = (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h
        _check_box(x1, y1, x2, y2, w, h, where)
        rows.append((x1, y1, x2, y2, cls))
    return rows


def _yolo_names(files: dict[str, Path]) -> list[str]:
    yamls = [k for k in files if Path(k).name.lower() in ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")]
    plain = [k for k in files if Path(k).name.lower() in ("classes.txt", "obj.names") or k.lower().endswith(".names")]
    if yamls:
        return _names_from_yaml(files[yamls[0]].read_text(errors="replace"), yamls[0])
    if plain:
        names = [s.strip() for s in files[plain[0]].read_text(errors="replace").splitlines() if s.strip()]
        if not names:
            raise DatasetError("the names file lists no names", plain[0])
        return names
    raise DatasetError("the archive has no names file (data.yaml with names:, classes.txt or *.names)")


def _names_from_yaml(text: str, entry: str) -> list[str]:
    """The `names:` of an Ultralytics data.yaml: an inline list, a block list, or a block mapping index: name."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^names\s*:\s*(.*)$", line)
        if not m:
            continue
        rest = m.group(1).split(" #")[0].strip()
        if rest.startswith("["):
            return [_unquote(s) for s in rest.strip("[]").split(",") if s.strip()]
        if rest.startswith("{"):
            pairs = [s.split(":", 1) for s in rest.strip("{}").split(",") if ":" in s]
            return [_unquote(v) for _, v in sorted(pairs, key=lambda kv: int(kv[0]))]
        names: dict[int, str] = {}
        for sub in lines[i + 1:]:
            if not sub.strip() or sub.lstrip().startswith("#"):
                continue
            if not sub.startswith((" ", "\t", "-")):
                break
            s = sub.strip()
            if s.startswith("-"):
                names[len(names)] = _unquote(s[1:])
            elif ":" in s:
                k, v = s.split(":", 1)
                names[int(k)] = _unquote(v)
        if names and sorted(names) == list(range(len(names))):
            return [names[k] for k in range(len(names))]
        raise DatasetError("could not read 'names:' (a list, or a mapping 0: name, 1: name, ...)", entry)
    raise DatasetError("no 'names:' key", entry)


def _unquote(s: str) -> str:
    return s.strip().strip("'\"").strip()
