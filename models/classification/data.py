"""Image-classification datasets (numpy and Pillow only: the API validates uploads with this module).

Formats:
  imagefolder  a zip, tar or tar.gz archive of <class>/<image> files, PNG or JPEG, grey or colour, any size
               (one enclosing folder, <top>/<class>/<image>, is fine). The app unpacks the archive
               safely; this module reads the folder it unpacked to.
  csv          a zip, tar or tar.gz archive holding one CSV of `path,label` rows (a header row `path,label`
               is optional) beside the images it names; paths are relative to the CSV's folder.
  npz          arrays x (N,H,W) or (N,H,W,C) uint8 and y (N,) integer or string labels; or the Keras
               MNIST layout x_train/y_train/x_test/y_test, whose test arrays become the validation split.

An archive may also carry a weights file (*.safetensors, *.pt, *.pth) at its top, for a job's
`init_from`; it is not an image and is skipped here.

Every problem is a DatasetError naming the entry (file in the archive, or array) and, where it
applies, the index, so the uploader can find the bad record.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.common.errors import DatasetError
from models.common.images import DEFAULT_MAX_PIXELS, pillow_reason, resize
from models.common.npz import read_npz

FORMATS = {
    "imagefolder": "zip, tar or tar.gz archive of <class>/<image> (PNG, JPEG or WebP)",
    "csv": "zip, tar or tar.gz archive of images and one CSV of path,label rows",
    "npz": "numpy .npz with x (N,H,W[,C]) uint8 and y, or x_train/y_train/x_test/y_test",
}
ARCHIVE_FORMATS = frozenset({"imagefolder", "csv"})  # uploads the app unpacks into a folder before validating
EXTENSIONS = ((".tar.gz", "imagefolder"), (".tgz", "imagefolder"), (".tar", "imagefolder"),
              (".zip", "imagefolder"), (".npz", "npz"))
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
IMAGE_FORMATS = {"PNG", "JPEG", "MPO", "WEBP"}  # MPO: the JPEG variant many cameras write
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")  # init_from weights shipped in the archive


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
    if fmt in ("imagefolder", "csv"):
        return _images_stats(Path(path), fmt)
    if fmt == "npz":
        return _npz_stats(_read_npz(Path(path), max_bytes))
    raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def load(path: Path, fmt: str, size: tuple[int, int] | None = None, channels: int | None = None) -> Loaded:
    """Every image as uint8 [H, W, C] at one size (default: the most common) and channel count
    (default: 1 when all images are grey, else 3)."""
    if fmt in ("imagefolder", "csv"):
        return _load_images(Path(path), fmt, size, channels)
    if fmt == "npz":
        return _load_npz(_read_npz(Path(path), None), size, channels)
    raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


# -- imagefolder -------------------------------------------------------------------------------------

def _visible(p: Path) -> bool:
    return not p.name.startswith(".") and p.name != "__MACOSX"


def _is_weights(p: Path) -> bool:
    return p.is_file() and p.name.lower().endswith(WEIGHT_SUFFIXES)


def _class_root(root: Path) -> Path:
    # Archives made by zipping a folder hold <top>/<class>/<image>: step into a lone top folder.
    entries = [p for p in root.iterdir() if _visible(p) and not _is_weights(p)]
    if len(entries) == 1 and entries[0].is_dir():
        inner = [p for p in entries[0].iterdir() if _visible(p) and not _is_weights(p)]
        if inner and all(p.is_dir() for p in inner):
            return entries[0]
    return root


def _scan(root: Path) -> list[tuple[Path, str, str]]:
    """(file, entry name, class) for every image; checks the layout."""
    base = _class_root(root)
    files: list[tuple[Path, str, str]] = []
    for p in sorted(base.iterdir()):
        if not _visible(p) or _is_weights(p):
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
                raise DatasetError("is not a .png, .jpg, .jpeg or .webp image", rel)
            files.append((f, rel, p.name))
    if not files:
        raise DatasetError("the archive holds no images; lay it out as <class>/<image>.png")
    classes = sorted({c for _, _, c in files})
    if len(classes) < 2:
        raise DatasetError(f"only one class folder ({classes[0]!r}); a classifier needs at least two")
    return files


def _find_csv(root: Path) -> Path:
    found = sorted(p for p in root.rglob("*.csv") if p.is_file() and not any(
        part.startswith(".") or part == "__MACOSX" for part in p.relative_to(root).parts))
    if not found:
        raise DatasetError("the archive holds no .csv file; add one of path,label rows beside the images")
    if len(found) > 1:
        names = ", ".join(p.relative_to(root).as_posix() for p in found[:5])
        raise DatasetError(f"the archive holds {len(found)} .csv files ({names}); keep exactly one")
    return found[0]


def _scan_csv(root: Path) -> list[tuple[Path, str, str]]:
    """(file, entry name, class) for every row of the archive's CSV; the CSV's problems name its line."""
    table = _find_csv(root)
    entry, base = table.relative_to(root).as_posix(), table.parent.resolve()
    try:
        text = table.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"is not UTF-8 text ({e})", entry) from e
    files: list[tuple[Path, str, str]] = []
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if line == 1 and [c.strip().lower() for c in row] == ["path", "label"]:
            continue  # header
        if len(row) != 2:
            raise DatasetError(f"line {line}: expected 2 columns (path,label), got {len(row)}: {','.join(row)!r}",
                               entry)
        name, label = row[0].strip(), row[1].strip()
        if not name or not label:
            raise DatasetError(f"line {line}: the {'path' if not name else 'label'} is empty", entry)
        f = (base / name).resolve()
        if not f.is_relative_to(root.resolve()):
            raise DatasetError(f"line {line}: path {name!r} points outside the archive", entry)
        if not f.is_file():
            raise DatasetError(f"line {line}: image {name!r} is not in the archive", entry)
        if f.suffix.lower() not in IMAGE_SUFFIXES:
            raise DatasetError(f"line {line}: {name!r} is not a .png, .jpg, .jpeg or .webp image", entry)
        files.append((f, f.relative_to(root.resolve()).as_posix(), label))
    if not files:
        raise DatasetError("has no path,label rows", entry)
    classes = sorted({c for _, _, c in files})
    if len(classes) < 2:
        raise DatasetError(f"every row has label {classes[0]!r}; a classifier needs at least two classes", entry)
    return files


def _files(root: Path, fmt: str) -> list[tuple[Path, str, str]]:
    return _scan_csv(root) if fmt == "csv" else _scan(root)


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
        raise DatasetError(f"is not a readable PNG, JPEG or WebP image ({pillow_reason(e)})", entry) from e
    if img.format not in IMAGE_FORMATS:
        raise DatasetError(f"is a {img.format} image; use PNG, JPEG or WebP", entry)
    return img


def _images_stats(root: Path, fmt: str) -> dict[str, Any]:
    files = _files(root, fmt)
    sizes: Counter[tuple[int, int]] = Counter()
    colour = 0
    for f, entry, _ in files:
        img = _open(f, entry)
        sizes[(img.height, img.width)] += 1
        colour += img.mode not in GREY_MODES
        img.close()
    counts = Counter(c for _, _, c in files)
    return _stats(sorted(counts), dict(sorted(counts.items())), len(files), sizes, 3 if colour else 1)


def _load_images(root: Path, fmt: str, size: tuple[int, int] | None, channels: int | None) -> Loaded:
    files = _files(root, fmt)
    if channels is None or size is None:  # a first pass over the headers only
        sizes: Counter[tuple[int, int]] = Counter()
        colour = False
        for f, _entry, _ in files:
            with Image.open(f) as img:
                sizes[(img.height, img.width)] += 1
                colour |= img.mode not in GREY_MODES
        channels = channels or (3 if colour else 1)
        size = size or sizes.most_common(1)[0][0]
    x = np.empty((len(files), size[0], size[1], channels), np.uint8)
    for i, (f, entry, _) in enumerate(files):  # one image open at a time: 50000 files stay within memory
        with _open(f, entry) as img:
            x[i] = _pixels(img, channels, size)
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
    return read_npz(path, max_bytes)


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
