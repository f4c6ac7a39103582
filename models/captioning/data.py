"""Image-captioning datasets (numpy and Pillow only: the API validates uploads with this module).

Formats (both archives, zip/tar/tar.gz, that the app unpacks safely before this module reads them):
  coco      a COCO captions JSON ({"images": [{id, file_name}], "annotations": [{image_id, caption}]})
            and the images it names (file_name relative to the JSON's folder, its parent or the archive
            top, or a unique base name anywhere). Two captions JSONs, one with 'train' and one with 'val'
            in its name, keep that split. A COCO instances JSON beside it (no captions) is ignored.
  flickr8k  the Flickr8k token file (`<image>#<n>\t<caption>` per line; any .txt in that layout, e.g.
            Flickr8k.token.txt or captions.txt) and the images it names (by base name, anywhere).

Every image must have at least one caption and every caption an image in the archive; an image that
does not decode is named too: DatasetError naming the entry (JSON path / line / image file).
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
from models.common.images import DEFAULT_MAX_PIXELS

FORMATS = {
    "coco": "zip, tar or tar.gz archive of a COCO captions JSON and the images it names",
    "flickr8k": "zip, tar or tar.gz archive of the Flickr8k token file (image#n<TAB>caption) and the images",
}
ARCHIVE_FORMATS = frozenset(FORMATS)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
TOKEN_LINE = re.compile(r"^(?P<image>[^\t#]+)#(?P<n>\d+)\t(?P<caption>.*)$")


@dataclass
class Record:
    path: Path
    entry: str  # the image's path in the archive
    captions: list[str] = field(default_factory=list)


@dataclass
class Parsed:
    train: list[Record]
    val: list[Record] | None = None  # a split the dataset names itself


@dataclass
class Loaded:
    images: np.ndarray  # uint8 [N, H, W, C]
    captions: list[list[str]]  # per image, raw text
    entries: list[str]


def guess_format(filename: str) -> str | None:
    return None  # both formats are archives; the upload says which


def validate(path: Path, fmt: str, max_bytes: int | None = None) -> dict[str, Any]:
    """Parses the annotations and decodes every image; summary statistics, or DatasetError at the first bad one."""
    parsed = parse(Path(path), fmt)
    records = parsed.train + (parsed.val or [])
    grey = 0
    for r in records:
        grey += read_image(r, None).ndim == 2
    caps = [c for r in records for c in r.captions]
    words = [len(normalise(c).split()) for c in caps]
    return {"images": len(records), "train_images": len(parsed.train),
            "val_images": len(parsed.val) if parsed.val is not None else None, "captions": len(caps),
            "grey_images": grey, "mean_caption_words": round(float(np.mean(words)), 2),
            "max_caption_words": int(max(words)), "examples": caps[:3]}


def parse(path: Path, fmt: str) -> Parsed:
    if fmt == "coco":
        return _parse_coco(Path(path))
    if fmt == "flickr8k":
        return _parse_flickr(Path(path))
    raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def normalise(text: str) -> str:
    """Lower case, punctuation stripped, single spaces: how captions are trained on and scored."""
    return " ".join(re.sub(r"[^\w\s]|_", " ", text.lower()).split())


def read_image(r: Record, channels: int | None = 3, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """uint8 [H, W, 3] (channels 3), [H, W] (channels 1), or as stored (None: grey stays [H, W]);
    DatasetError naming the entry when it does not decode."""
    return archive_files.read_image(r.path, r.entry, None if channels is None else "L" if channels == 1 else "RGB",
                                    max_pixels)


def load(path: Path, fmt: str, size: int | None = None, channels: int | None = None) -> tuple[Loaded, Loaded | None]:
    """Every image resized to size x size (bilinear; None: 64, or the common size when all share one
    square size <= 128) with `channels` (None: 1 when all are grey, else 3); (train, val or None)."""
    parsed = parse(Path(path), fmt)
    records = parsed.train + (parsed.val or [])
    raw = [read_image(r, None) for r in records]
    if channels is None:
        channels = 1 if all(a.ndim == 2 for a in raw) else 3
    if size is None:
        shapes = {a.shape[:2] for a in raw}
        only = next(iter(shapes)) if len(shapes) == 1 else None
        size = only[0] if only and only[0] == only[1] and only[0] <= 128 else 64
    out = np.empty((len(raw), size, size, channels), np.uint8)
    for i, a in enumerate(raw):
        img = Image.fromarray(a)
        img = img.convert("L" if channels == 1 else "RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        arr = np.asarray(img)
        out[i] = arr[..., None] if arr.ndim == 2 else arr
    n = len(parsed.train)
    train = Loaded(out[:n], [r.captions for r in parsed.train], [r.entry for r in parsed.train])
    val = None
    if parsed.val is not None:
        val = Loaded(out[n:], [r.captions for r in parsed.val], [r.entry for r in parsed.val])
    return train, val


def _check_caption(text: Any, where: str) -> str:
    if not isinstance(text, str) or not normalise(text):
        raise DatasetError(f"the caption {text!r} is empty or not text", where)
    return text.strip()


# -- COCO ---------------------------------------------------------------------------------------------
def _is_captions(doc: Any) -> bool:
    if not isinstance(doc, dict) or not {"images", "annotations"} <= doc.keys():
        return False
    anns = doc["annotations"]
    return isinstance(anns, list) and (not anns or (isinstance(anns[0], dict) and "caption" in anns[0]))


def _parse_coco(root: Path) -> Parsed:
    files = archive_files.listing(root)
    train, val = archive_files.annotation_json(files, _is_captions, "COCO captions JSON",
                                               "an object with images and annotations that carry a caption")
    return Parsed(_coco_split(files, *train), _coco_split(files, *val) if val else None)


def _coco_split(files: dict[str, Path], name: str, doc: dict) -> list[Record]:
    if not isinstance(doc["images"], list) or not doc["images"]:
        raise DatasetError("'images' must be a non-empty list", name)
    records: dict[Any, Record] = {}
    for _, image_id, _, key in archive_files.coco_images(files, name, doc, loose=True, unique=True):
        records[image_id] = Record(files[key], key)
    for i, a in enumerate(doc["annotations"]):
        where = f"{name}: annotations[{i}]" + (f" (id {a['id']})" if isinstance(a, dict) and "id" in a else "")
        if not isinstance(a, dict) or "image_id" not in a or "caption" not in a:
            raise DatasetError("every annotation needs image_id and caption", where)
        r = records.get(a["image_id"])
        if r is None:
            raise DatasetError(f"a caption for image_id {a['image_id']!r}, which is not among the JSON's images "
                               "(no such image in the archive's annotations)", where)
        r.captions.append(_check_caption(a["caption"], where))
    for i, (image_id, r) in enumerate(records.items()):
        if not r.captions:
            raise DatasetError(f"image {r.entry!r} (id {image_id}) has no caption in the annotations",
                               f"{name}: images[{i}]")
    return list(records.values())


# -- Flickr8k -----------------------------------------------------------------------------------------
def _token_files(files: dict[str, Path]) -> list[str]:
    out = []
    for name, p in files.items():
        if not name.lower().endswith(".txt"):
            continue
        with open(p, "rb") as f:
            head = f.read(4096).decode("utf-8", errors="replace")
        first = next((line for line in head.splitlines() if line.strip()), "")
        if TOKEN_LINE.match(first.lstrip("\ufeff")):
            out.append(name)
    return out


def _parse_flickr(root: Path) -> Parsed:
    files = archive_files.listing(root)
    tokens = _token_files(files)
    if not tokens:
        raise DatasetError("the archive holds no Flickr8k token file (a .txt whose lines are "
                           "'<image>#<n><TAB><caption>', e.g. Flickr8k.token.txt)")
    if len(tokens) > 1:
        lemma = [t for t in tokens if "lemma" not in t.lower()]  # Flickr8k ships a lemmatised copy too
        if len(lemma) != 1:
            raise DatasetError(f"the archive holds {len(tokens)} Flickr8k token files ({', '.join(tokens)}); "
                               "give one")
        tokens = lemma
    token = tokens[0]
    names = archive_files.by_name(files)
    records: dict[str, Record] = {}
    text = files[token].read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{token}: line {n}"
        m = TOKEN_LINE.match(line.rstrip("\r"))
        if m is None:
            raise DatasetError(f"expected '<image>#<n><TAB><caption>', got {line.strip()[:80]!r}", where)
        image = m["image"].strip()
        r = records.get(image)
        if r is None:
            hits = names.get(image.rsplit("/", 1)[-1], [])
            hits = [h for h in hits if Path(h).suffix.lower() in IMAGE_SUFFIXES]
            if len(hits) != 1:
                raise DatasetError(f"a caption for image {image!r}, which is not in the archive" if not hits else
                                   f"image {image!r} is in the archive {len(hits)} times ({', '.join(hits[:3])})",
                                   where)
            r = records[image] = Record(files[hits[0]], hits[0])
        r.captions.append(_check_caption(m["caption"], where))
    if not records:
        raise DatasetError("the token file holds no captions", token)
    used = {r.entry for r in records.values()}
    for name in files:
        if Path(name).suffix.lower() in IMAGE_SUFFIXES and name not in used:
            raise DatasetError(f"an image without captions in {token}; add its captions or leave it out of "
                               "the archive", name)
    return Parsed(list(records.values()))
