"""The files of an unpacked dataset archive: listing them, finding what an annotation file names, and
reading an image with its entry named in every error (numpy and Pillow only: the API validates uploads
with the families' data modules, which use this)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from models.common.errors import DatasetError
from models.common.images import DEFAULT_MAX_PIXELS

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
        raise DatasetError(f"not a decodable image: {e}", entry) from e
