"""Image-classification datasets (numpy and Pillow only: the API validates uploads with this module).

Formats:
  imagefolder  a zip, tar or tar.gz archive of <class>/<image> files, PNG or JPEG, grey or colour, any size
               (one enclosing folder, <top>/<class>/<image>, is fine). The app unpacks the archive
               safely; this module reads the folder it unpacked to.
  npz          arrays x (N,H,W) or (N,H,W,C) uint8 and y (N,) integer or string labels; or the Keras
               MNIST layout x_train/y_train/x_test/y_test, whose test arrays become the validation split.

Every problem is a DatasetError naming the entry (file in the archive, or array) and, where it
applies, the index, so the uploader can find the bad record.
"""

from __future__ import annotations

import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.common.images import DEFAULT_MAX_PIXELS, resize

FORMATS = {
    "imagefolder": "zip, tar or tar.gz archive of <class>/<image> (PNG or JPEG)",
    "npz": "numpy .npz with x (N,H,W[,C]) uint8 and y, or x_train/y_train/x_test/y_test",
}
ARCHIVE_FORMATS = frozenset({"imagefolder"})  # uploads the app unpacks into a folder before validating
EXTENSIONS = ((".tar.gz", "imagefolder"), (".tgz", "imagefolder"), (".tar", "imagefolder"),
              (".zip", "imagefolder"), (".npz", "npz"))
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
IMAGE_FORMATS = {"PNG", "JPEG", "MPO"}  # MPO: the JPEG variant many cameras write
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


class DatasetError(ValueError):
    def __init__(self, message: str, entry: str | None = None):
        super().__init__(f"entry '{entry}': {message}" if entry else message)
        self.entry = entry
        self.message = message


@dataclass
class ImageSet:
    x: np.ndarray  # [N, H, W, C] uint8
    y: np.ndarray  # [N] int64 indices into the labels


@dataclass
class Loaded:
    labels: list[str]
    train: ImageSet
    test: ImageSet | None = None  # a split the file itself designates (Keras layout)


def guess_format(filename: str) -> str | None:
    name = filename.lower()
    return next((fmt for suffix, fmt in EXTENSIONS if name.endswith(suffix)), None)


def validate(path: Path, fmt: str, max_bytes: int | None = None) -> dict[str, Any]:
    """Reads every record and returns summary statistics; raises DatasetError at the first bad one."""
    if fmt == "imagefolder":
        return _imagefolder_stats(Path(path))
    if fmt == "npz":
        return _npz_stats(_read_npz(Path(path), max_bytes))
    raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def load(path: Path, fmt: str, size: tuple[int, int] | None = None, channels: int | None = None) -> Loaded:
    """Every image as uint8 [H, W, C] at one size (default: the most common) and channel count
    (default: 1 when all images are grey, else 3)."""
    if fmt == "imagefolder":
        return _load_imagefolder(Path(path), size, channels)
    if fmt == "npz":
        return _load_npz(_read_npz(Path(path), None), size, channels)
    raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


# -- imagefolder -------------------------------------------------------------------------------------

def _visible(p: Path) -> bool:
    return not p.name.startswith(".") and p.name != "__MACOSX"


def _class_root(root: Path) -> Path:
    # Archives made by zipping a folder hold <top>/<class>/<image>: step into a lone top folder.
    entries = [p for p in root.iterdir() if _visible(p)]
    if len(entries) == 1 and entries[0].is_dir():
        inner = [p for p in entries[0].iterdir() if _visible(p)]
        if inner and all(p.is_dir() for p in inner):
            return entries[0]
    return root


def _scan(root: Path) -> list[tuple[Path, str, str]]:
    """(file, entry name, class) for every image; checks the layout."""
    base = _class_root(root)
    files: list[tuple[Path, str, str]] = []
    for p in sorted(base.iterdir()):
        if not _visible(p):
            continue
        entry = p.relative_to(root).as_posix()
        if not p.is_dir():
            raise DatasetError("is not inside a class folder; lay the archive out as <class>/<image>", entry)
        for f in sorted(p.rglob("*")):
            rel = f.relative_to(root).as_posix()
            if any(part.startswith(".") or part == "__MACOSX" for part in f.relative_to(base).parts):
                continue
            if f.is_dir():
                raise DatasetError("is a folder inside a class folder; lay the archive out as <class>/<image>",
                                   rel)
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                raise DatasetError("is not a .png, .jpg or .jpeg image", rel)
            files.append((f, rel, p.name))
    if not files:
        raise DatasetError("the archive holds no images; lay it out as <class>/<image>.png")
    classes = sorted({c for _, _, c in files})
    if len(classes) < 2:
        raise DatasetError(f"only one class folder ({classes[0]!r}); a classifier needs at least two")
    return files


def _open(f: Path, entry: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(f)
            w, h = img.size
            if w * h > DEFAULT_MAX_PIXELS:
                raise DatasetError(f"image of {w}x{h} pixels is over the limit of {DEFAULT_MAX_PIXELS}", entry)
            img.load()
    except DatasetError:
        raise
    except Exception as e:  # Pillow raises many kinds (UnidentifiedImageError, OSError, SyntaxError...)
        raise DatasetError(f"is not a readable PNG or JPEG image ({e})", entry) from e
    if img.format not in IMAGE_FORMATS:
        raise DatasetError(f"is a {img.format} image; use PNG or JPEG", entry)
    return img


def _imagefolder_stats(root: Path) -> dict[str, Any]:
    files = _scan(root)
    sizes: Counter[tuple[int, int]] = Counter()
    colour = 0
    for f, entry, _ in files:
        img = _open(f, entry)
        sizes[(img.height, img.width)] += 1
        colour += img.mode not in GREY_MODES
        img.close()
    counts = Counter(c for _, _, c in files)
    return _stats(sorted(counts), dict(sorted(counts.items())), len(files), sizes, 3 if colour else 1)


def _load_imagefolder(root: Path, size: tuple[int, int] | None, channels: int | None) -> Loaded:
    files = _scan(root)
    images, colour = [], False
    for f, entry, _ in files:
        img = _open(f, entry)
        colour |= img.mode not in GREY_MODES
        images.append(img)
    channels = channels or (3 if colour else 1)
    size = size or Counter((img.height, img.width) for img in images).most_common(1)[0][0]
    x = np.stack([_pixels(img, channels, size) for img in images])
    labels = sorted({c for _, _, c in files})
    index = {c: i for i, c in enumerate(labels)}
    y = np.array([index[c] for _, _, c in files], np.int64)
    return Loaded(labels, ImageSet(x, y))


def _pixels(img: Image.Image, channels: int, size: tuple[int, int]) -> np.ndarray:
    # The same conversions as serving (models.common.images): "L" or "RGB", then a bilinear resize.
    arr = resize(np.asarray(img.convert("L" if channels == 1 else "RGB")), size)
    return arr[..., None] if arr.ndim == 2 else arr


# -- npz ---------------------------------------------------------------------------------------------

def _read_npz(path: Path, max_bytes: int | None) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(path) as z:
            total = sum(i.file_size for i in z.infolist())
    except zipfile.BadZipFile as e:
        raise DatasetError(f"the file is not a numpy .npz archive ({e})") from e
    if max_bytes is not None and total > max_bytes:
        raise DatasetError(f"the arrays unpack to {total} bytes, over the limit of {max_bytes}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {}
            for key in npz.files:
                try:
                    arrays[key] = npz[key]
                except ValueError as e:  # object arrays need pickle, which an upload must never use
                    raise DatasetError(f"cannot be read without pickle ({e}); store plain arrays", key) from e
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(f"the file is not a readable numpy .npz archive ({e})") from e
    return arrays


def _npz_splits(arrays: dict[str, np.ndarray]) -> dict[str, tuple[str, str]]:
    if {"x", "y"} <= arrays.keys():
        return {"train": ("x", "y")}
    if {"x_train", "y_train"} <= arrays.keys():
        splits = {"train": ("x_train", "y_train")}
        if {"x_test", "y_test"} <= arrays.keys():
            splits["test"] = ("x_test", "y_test")
        return splits
    raise DatasetError(f"the file holds arrays {sorted(arrays)}; expected x and y, "
                       "or x_train and y_train (with x_test and y_test)")


def _check_split(arrays: dict[str, np.ndarray], xk: str, yk: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = arrays[xk], arrays[yk]
    if x.dtype != np.uint8:
        raise DatasetError(f"pixels must be uint8 (0-255), got {x.dtype}", xk)
    if x.ndim == 4 and x.shape[3] == 1:
        pass
    elif x.ndim == 4 and x.shape[3] != 3:
        raise DatasetError(f"shape {x.shape}: the last axis must be 1 or 3 channels", xk)
    elif x.ndim not in (3, 4):
        raise DatasetError(f"shape {x.shape}: expected (N, H, W) or (N, H, W, C)", xk)
    if x.shape[0] == 0 or min(x.shape[1:3]) == 0:
        raise DatasetError(f"shape {x.shape} holds no images", xk)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetError(f"shape {y.shape}: expected one label per image, (N,)", yk)
    if len(y) != len(x):
        raise DatasetError(f"{len(y)} labels for {len(x)} images in '{xk}'", yk)
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype.kind == "U"):
        bad = next((i for i, v in enumerate(y) if not float(v).is_integer()), None) \
            if np.issubdtype(y.dtype, np.floating) else 0
        if bad is not None:
            raise DatasetError(f"labels must be integers or strings, got {y.dtype} (e.g. [{bad}] = {y[bad]!r})", yk)
        y = y.astype(np.int64)
    if y.dtype.kind == "U":
        empty = np.flatnonzero(y == "")
        if len(empty):
            raise DatasetError(f"[{empty[0]}] is an empty label", yk)
    return (x if x.ndim == 4 else x[..., None]), y


def _labels(ys: list[np.ndarray]) -> list[str]:
    values = sorted(set().union(*(np.unique(y).tolist() for y in ys)))
    return [str(v) for v in values]


def _npz_stats(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    splits = {name: _check_split(arrays, xk, yk) for name, (xk, yk) in _npz_splits(arrays).items()}
    labels = _labels([y for _, y in splits.values()])
    if len(labels) < 2:
        raise DatasetError(f"every label is {labels[0]!r}; a classifier needs at least two classes",
                           _npz_splits(arrays)["train"][1])
    x, y = splits["train"]
    counts = Counter(str(v) for v in y.tolist())
    sizes = Counter({(x.shape[1], x.shape[2]): len(x)})
    stats = _stats(labels, {k: counts.get(k, 0) for k in labels}, len(x), sizes, x.shape[3])
    stats["splits"] = {name: len(sx) for name, (sx, _) in splits.items()}
    return stats


def _load_npz(arrays: dict[str, np.ndarray], size: tuple[int, int] | None, channels: int | None) -> Loaded:
    splits = {name: _check_split(arrays, xk, yk) for name, (xk, yk) in _npz_splits(arrays).items()}
    labels = _labels([y for _, y in splits.values()])
    index = {label: i for i, label in enumerate(labels)}
    out = {}
    for name, (x, y) in splits.items():
        channels = channels or x.shape[3]
        size = size or (x.shape[1], x.shape[2])
        if x.shape[3] != channels or (x.shape[1], x.shape[2]) != tuple(size):
            x = np.stack([_pixels(Image.fromarray(img[..., 0] if img.shape[2] == 1 else img), channels, size)
                          for img in x])
        out[name] = ImageSet(np.ascontiguousarray(x), np.array([index[str(v)] for v in y.tolist()], np.int64))
    return Loaded(labels, out["train"], out.get("test"))


def _stats(labels: list[str], counts: dict[str, int], rows: int, sizes: Counter, channels: int) -> dict[str, Any]:
    heights = [h for h, _ in sizes]
    widths = [w for _, w in sizes]
    return {
        "rows": rows,
        "classes": len(labels),
        "labels": labels,
        "class_counts": counts,
        "image_sizes": {"min": [min(heights), min(widths)], "max": [max(heights), max(widths)],
                        "most_common": list(sizes.most_common(1)[0][0])},
        "channels": channels,
    }
