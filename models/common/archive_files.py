"""The files of an unpacked dataset archive: listing them, finding what an annotation file names, and
reading an image with its entry named in every error (numpy and Pillow only: the API validates uploads
with the families' data modules, which use this)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.common.errors import DatasetError
from models.common.images import DEFAULT_MAX_PIXELS, pillow_reason

GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def listing(root: Path) -> dict[str, Path]:
    """Archive path (posix, relative to the root) -> file, sorted; macOS metadata (__MACOSX/, ._*) left out."""
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.is_file() and "__MACOSX" not in p.parts and not p.name.startswith("._")}


def by_name(files: dict[str, Path]) -> dict[str, list[str]]:
    """Archive paths by base name."""
    index: dict[str, list[str]] = {}
    for k in files:
        index.setdefault(k.rsplit("/", 1)[-1], []).append(k)
    return index


def find(files: dict[str, Path], names: dict[str, list[str]], bases: list[str], file_name: str,
         loose: bool = False) -> str | None:
    """The archive path of `file_name` as an annotation file names it: relative to the first of `bases`
    that holds it; else the one path that ends with it (a top folder the annotations omit); else, when
    `loose`, the one file with its base name anywhere (folders laid out differently). None: not there,
    or not unambiguously."""
    for b in bases:
        key = file_name if b in (".", "") else f"{b}/{file_name}"
        if key in files:
            return key
    same_name = names.get(file_name.rsplit("/", 1)[-1], [])
    hits = [k for k in same_name if k == file_name or k.endswith("/" + file_name)]
    if not hits and loose:
        hits = same_name
    return hits[0] if len(hits) == 1 else None


def annotation_json(files: dict[str, Path], wanted: Callable[[Any], bool], what: str,
                    shape: str) -> tuple[tuple[str, Any], tuple[str, Any] | None]:
    """The archive's annotation JSON that `wanted` accepts, as (name, document): (the one, None), or
    (train, val) when there are two, one with 'train' and one with 'val' in its file name. DatasetError
    otherwise, or naming a .json file that does not parse; `what` names the kind ("COCO instances JSON"),
    `shape` says what makes one."""
    found = []
    for name, p in files.items():
        if not name.lower().endswith(".json"):
            continue
        try:
            doc = json.loads(p.read_bytes())
        except (ValueError, UnicodeDecodeError) as e:
            raise DatasetError(f"not valid JSON: {e}", name) from e
        if wanted(doc):
            found.append((name, doc))
    if not found:
        raise DatasetError(f"the archive holds no {what} ({shape})")
    if len(found) == 1:
        return found[0], None
    train = [c for c in found if "train" in Path(c[0]).name.lower()]
    val = [c for c in found if "val" in Path(c[0]).name.lower()]
    if len(train) != 1 or len(val) != 1:
        listed = ", ".join(c[0] for c in found)
        raise DatasetError(f"the archive holds {len(found)} {what} files ({listed}); "
                           "give one, or one with 'train' and one with 'val' in its name")
    return train[0], val[0]


def coco_images(files: dict[str, Path], name: str, doc: dict[str, Any], loose: bool = False,
                unique: bool = False) -> Iterator[tuple[str, Any, dict[str, Any], str]]:
    """The images of the COCO JSON `name` in an archive, each as (where, its id, its JSON object, its archive
    path): a file named beside the JSON, in the folder above it or at the top (find). unique: an id given
    twice is an error."""
    base = Path(name).parent.as_posix()
    bases = [base, Path(base).parent.as_posix() if base != "." else ".", "."]
    names = by_name(files)
    seen = set()
    for i, im in enumerate(doc["images"]):
        where = f"{name}: images[{i}]"
        try:
            image_id, file_name = im["id"], str(im["file_name"])
        except (TypeError, KeyError) as e:
            raise DatasetError(f"every image needs id and file_name ({e})", where) from e
        if unique and image_id in seen:
            raise DatasetError(f"image id {image_id!r} appears twice", where)
        seen.add(image_id)
        entry = find(files, names, bases, file_name, loose=loose)
        if entry is None:
            raise DatasetError(f"image {file_name!r} (id {image_id}) is not in the archive", where)
        yield where, image_id, im, entry


def read_image(path: Path, entry: str, mode: str | None = "RGB", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """uint8 [H, W, 3] (mode RGB) or [H, W] (mode L); mode None keeps a grey image [H, W] and makes any
    other RGB. DatasetError naming the entry when it does not decode or is over max_pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.size[0] * img.size[1] > max_pixels:
                    raise DatasetError(f"image of {img.size[0]}x{img.size[1]} pixels is over {max_pixels}", entry)
                img.load()
                if mode is None:
                    mode = "L" if img.mode in GREY_MODES else "RGB"
                return np.asarray(img.convert(mode))
    except DatasetError:
        raise
    except Exception as e:  # Pillow raises many kinds
        raise DatasetError(f"not a decodable image: {pillow_reason(e)}", entry) from e
