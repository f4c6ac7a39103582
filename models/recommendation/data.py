"""Recommendation datasets (numpy only: the API validates uploads with this module).

Formats:
  movielens  any of MovieLens's rating files, told apart by content: `u.data` (user \\t item \\t rating
             \\t timestamp), `ratings.dat` (user::item::rating::timestamp) or `ratings.csv` (header
             userId,movieId,rating,timestamp); alone, or in a zip / tar(.gz) archive that may also hold
             item metadata for titles (`u.item`, `movies.dat` or `movies.csv`). Ratings 0.5 to 5.
  csv        a generic `user,item,rating[,timestamp]` CSV, with or without a header line; ids are any
             text, ratings numbers above 0 and at most 10.

Archives are read in place (only the known member names, regular files, within the size limit);
nothing is unpacked. Every problem is a DatasetError naming the file and line.
"""

from __future__ import annotations

import csv
import math
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from models.common.errors import DatasetTooLarge
from models.common.errors import TableError as DatasetError
from models.common.tables import check_file_size

FORMATS = {
    "movielens": "MovieLens u.data, ratings.dat or ratings.csv, alone or in a zip/tar with u.item or movies.csv",
    "csv": "CSV user,item,rating[,timestamp] (header optional)",
}
ARCHIVE_FORMATS: frozenset[str] = frozenset()  # archives are read in place by this module
RATING_FILES = ("u.data", "ratings.dat", "ratings.csv")
ITEM_FILES = ("u.item", "movies.dat", "movies.csv")
RANGES = {"movielens": (0.5, 5.0), "csv": (0.0, 10.0)}  # csv: above 0, at most 10
MAX_TITLE = 300


@dataclass
class Ratings:
    users: list[str]  # external ids, index = position
    items: list[str]
    u: np.ndarray  # [N] int64
    i: np.ndarray  # [N] int64
    r: np.ndarray  # [N] float32
    t: np.ndarray | None  # [N] int64 timestamps, when the file has them
    titles: dict[str, str] = field(default_factory=dict)
    source: str = ""


def guess_format(filename: str) -> str | None:
    name = PurePosixPath(filename.lower()).name
    if name in RATING_FILES or name.endswith((".data", ".dat", ".base", ".zip", ".tar", ".tar.gz", ".tgz")):
        return "movielens"
    return "csv" if name.endswith(".csv") else None


def validate(path: Path, fmt: str, max_bytes: int | None = None) -> dict[str, Any]:
    data = load(path, fmt, max_bytes)
    return {"ratings": len(data.r), "users": len(data.users), "items": len(data.items),
            "rating_min": float(data.r.min()), "rating_max": float(data.r.max()),
            "mean_rating": round(float(data.r.mean()), 4), "titles": len(data.titles),
            "timestamps": data.t is not None, "source": data.source}


def load(path: Path, fmt: str, max_bytes: int | None = None) -> Ratings:
    if fmt not in FORMATS:
        raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    path = Path(path)
    check_file_size(path, max_bytes, "the file is empty")
    if fmt == "movielens" and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path)):
        members = _archive_members(path, max_bytes)
        name = next((n for want in RATING_FILES for n in members if PurePosixPath(n).name == want), None)
        if name is None:
            raise DatasetError(f"the archive holds none of {', '.join(RATING_FILES)}")
        data = _parse(members[name], fmt, name)
        meta = next((n for want in ITEM_FILES for n in members if PurePosixPath(n).name == want), None)
        if meta is not None:
            data.titles = _titles(members[meta], meta, set(data.items))
        return data
    return _parse(path.read_bytes(), fmt, None)


def _archive_members(path: Path, max_bytes: int | None) -> dict[str, bytes]:
    """The known members' bytes. Every member's declared size counts against `max_bytes`, the ones
    skipped too, and is checked before the member is read: a bomb stops at its directory (zip) or at
    the first header past the budget (tar), never inflated in memory."""
    wanted = set(RATING_FILES) | set(ITEM_FILES)
    limit = max_bytes or 2**31
    out: dict[str, bytes] = {}
    seen = 0

    def count(size: int, name: str) -> None:
        nonlocal seen
        seen += size
        if seen > limit:
            raise DatasetTooLarge(f"the archive unpacks to more than its budget of {limit} bytes", name)

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    count(info.file_size, info.filename)
                for info in z.infolist():
                    if info.is_dir() or PurePosixPath(info.filename).name not in wanted:
                        continue
                    with z.open(info) as f:  # stops at the directory's file_size, whatever the data holds
                        out[info.filename] = f.read()
        else:
            with tarfile.open(path) as tf:
                for m in tf:
                    count(max(m.size, 0), m.name)
                    if not m.isfile() or PurePosixPath(m.name).name not in wanted:
                        continue
                    out[m.name] = tf.extractfile(m).read()
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error, NotImplementedError) as e:
        raise DatasetError(f"the archive cannot be read: {e}") from None
    return out


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # MovieLens 100k/1M files are Latin-1


def _where(name: str | None, line: int) -> str:
    return f"{name} line {line}" if name else f"line {line}"


def _parse(raw: bytes, fmt: str, name: str | None) -> Ratings:
    lines = _text(raw).splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    if not first:
        raise DatasetError("the file has no ratings", _where(name, 1))
    if fmt == "movielens":
        if "::" in first:
            rows, kind = ((n, ln.split("::")) for n, ln in enumerate(lines, 1) if ln.strip()), "ratings.dat"
        elif "\t" in first:
            rows, kind = ((n, ln.split("\t")) for n, ln in enumerate(lines, 1) if ln.strip()), "u.data"
        elif first.replace(" ", "").lower().startswith("userid,movieid,rating"):
            rows, kind = _csv_rows(lines[1:], 2), "ratings.csv"
        else:
            raise DatasetError("not a MovieLens ratings file: expected user\\titem\\trating\\ttimestamp (u.data), "
                               "user::item::rating::timestamp (ratings.dat) or a userId,movieId,rating,timestamp "
                               f"header (ratings.csv); the first line is {first[:60]!r}", _where(name, 1))
    else:
        cells = next(csv.reader([first]))
        header = len(cells) >= 3 and not _is_number(cells[2])
        if len(cells) < 3:
            raise DatasetError(f"expected user,item,rating[,timestamp]; the first line has {len(cells)} field(s)",
                               _where(name, 1))
        start = lines.index(first) + 1 if header else 0
        rows, kind = _csv_rows(lines[start:], start + 1), "csv"
    lo, hi = RANGES[fmt]
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    u, i, r, t = [], [], [], []
    stamps = True
    for n, cells in rows:
        where = _where(name, n)
        if len(cells) not in (3, 4):
            raise DatasetError(f"expected user, item, rating[, timestamp]; found {len(cells)} field(s)", where)
        user, item = cells[0].strip(), cells[1].strip()
        if not user or not item:
            raise DatasetError(f"an empty {'user' if not user else 'item'} id", where)
        try:
            rating = float(cells[2])
        except ValueError:
            raise DatasetError(f"rating {cells[2].strip()[:40]!r} is not a number", where) from None
        if not math.isfinite(rating) or not (lo < rating <= hi if lo == 0 else lo <= rating <= hi):
            bounds = f"above {lo:g} and at most {hi:g}" if lo == 0 else f"between {lo:g} and {hi:g}"
            raise DatasetError(f"rating {cells[2].strip()} is out of range: ratings are {bounds}", where)
        if len(cells) == 4 and stamps:
            try:
                t.append(int(float(cells[3])))
            except ValueError:
                raise DatasetError(f"timestamp {cells[3].strip()[:40]!r} is not a number", where) from None
        else:
            stamps = False
        u.append(users.setdefault(user, len(users)))
        i.append(items.setdefault(item, len(items)))
        r.append(rating)
    if not r:
        raise DatasetError("the file has no ratings", _where(name, 2 if kind in ("ratings.csv",) else 1))
    return Ratings(list(users), list(items), np.asarray(u, np.int64), np.asarray(i, np.int64),
                   np.asarray(r, np.float32), np.asarray(t, np.int64) if stamps and len(t) == len(r) else None,
                   source=f"{name} ({kind})" if name else kind)


def _csv_rows(lines: list[str], first_line: int):
    for n, cells in enumerate(csv.reader(lines), first_line):
        if cells and any(c.strip() for c in cells):
            yield n, cells


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _titles(raw: bytes, name: str, known: set[str]) -> dict[str, str]:
    """u.item (id|title|...), movies.dat (id::title::genres) or movies.csv (movieId,title,genres)."""
    lines = _text(raw).splitlines()
    if name.endswith("u.item"):
        rows = ((n, ln.split("|")) for n, ln in enumerate(lines, 1) if ln.strip())
    elif name.endswith(".dat"):
        rows = ((n, ln.split("::")) for n, ln in enumerate(lines, 1) if ln.strip())
    else:
        rows = _csv_rows(lines[1:], 2)
    out = {}
    for n, cells in rows:
        if len(cells) < 2:
            raise DatasetError("expected an item id and a title", _where(name, n))
        item = cells[0].strip()
        if item in known:
            out[item] = cells[1].strip()[:MAX_TITLE]
    return out
