"""Parallel text for translation (stdlib only: the API validates uploads with this module).

Formats:
  parallel          one tab-separated UTF-8 text file, a sentence pair per line: `source<TAB>target`,
                    extra columns ignored (the Tatoeba/Anki fra.txt layout, `English<TAB>French<TAB>
                    attribution`). Config `columns` ("en,fr") names the language of each column, so that
                    source_lang/target_lang pick the direction; without it column 1 is the source.
  parallel-archive  a zip, tar or tar.gz archive of aligned plain-text files, one sentence per line:
                    train.<lang> for every language (train.de, train.en), and optionally val.<lang>,
                    which then is the validation split (otherwise it is carved from train with
                    val_fraction and seed). One enclosing folder is fine. source_lang/target_lang pick
                    the files.

Blank lines at the end of a file are ignored. Every problem is a DatasetError naming the file and
the line (a line without a tab, an empty side of a pair, files of different line counts, an empty
file), so the uploader can find it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.common.errors import DatasetError, TableError

FORMATS = {
    "parallel": "tab-separated text, one `source<TAB>target` pair a line (extra columns ignored; Anki fra.txt), "
                "or a zip, tar or tar.gz archive of aligned train.<lang> files (and optionally val.<lang>)",
}
ARCHIVE_FORMATS: frozenset[str] = frozenset()
EITHER_FORMATS = frozenset({"parallel"})  # the API unpacks an archive and keeps a plain file as it is
EXTENSIONS = ((".tar.gz", "parallel"), (".tgz", "parallel"), (".tar", "parallel"), (".zip", "parallel"),
              (".tsv", "parallel"), (".txt", "parallel"))
SPLIT_FILE = re.compile(r"^(?P<split>train|val|valid|dev)\.(?P<lang>[A-Za-z0-9_-]{1,20})$")
MAX_LINE_CHARS = 10_000


@dataclass
class Corpus:
    """Aligned sentences per language: texts[lang][i] are translations of each other."""

    langs: list[str]
    texts: dict[str, list[str]]
    val: dict[str, list[str]] | None = None  # a split the data itself designates (val.<lang>)
    fields: int | None = None  # tsv: the fewest tab-separated fields on a line (how many languages `columns` may name)

    def __len__(self) -> int:
        return len(self.texts[self.langs[0]])


def guess_format(filename: str) -> str | None:
    name = filename.lower()
    return next((fmt for suffix, fmt in EXTENSIONS if name.endswith(suffix)), None)


def validate(path: Path, fmt: str, max_bytes: int | None = None) -> dict[str, Any]:
    """Reads every line and returns summary statistics; raises DatasetError at the first bad one."""
    corpus = read(path, fmt, max_bytes=max_bytes)
    # a tsv's columns get their languages from the job's config (`columns`); here they are "column 1", ...
    tsv = not Path(path).is_dir()
    label = (lambda k: f"column {k}") if tsv else (lambda k: k)  # noqa: E731
    stats: dict[str, Any] = {"rows": len(corpus), "splits": {"train": len(corpus)}}
    if tsv:
        stats["columns"] = len(corpus.langs)
        stats["min_fields"] = corpus.fields
    else:
        stats["languages"] = corpus.langs
    if corpus.val is not None:
        stats["splits"]["val"] = len(corpus.val[corpus.langs[0]])
    stats["mean_words"] = {label(lang): round(sum(len(s.split()) for s in texts) / max(1, len(texts)), 2)
                           for lang, texts in corpus.texts.items()}
    return stats


def read(path: Path, fmt: str, columns: list[str] | None = None, max_bytes: int | None = None) -> Corpus:
    if fmt == "parallel":  # an archive arrives unpacked, as a folder
        return _read_archive(Path(path)) if Path(path).is_dir() else _read_tsv(Path(path), columns, max_bytes)
    raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def pick(corpus: Corpus, source_lang: str | None, target_lang: str | None) -> tuple[str, str]:
    """The (source, target) languages of a run: named by the config, or the only two there are."""
    langs = corpus.langs
    if langs == ["1", "2"]:  # a tsv read without `columns`: column 1 -> column 2, whatever the names say
        return "1", "2"
    for name, lang in (("source_lang", source_lang), ("target_lang", target_lang)):
        if lang is not None and lang not in langs:
            raise ValueError(f"{name} {lang!r} is not in the dataset, which holds {', '.join(langs)}")
    if source_lang and target_lang:
        return source_lang, target_lang
    if len(langs) == 2 and (source_lang or target_lang):
        other = next(x for x in langs if x != (source_lang or target_lang))
        return (source_lang, other) if source_lang else (other, target_lang)  # type: ignore[return-value]
    raise ValueError(f"set source_lang and target_lang: the dataset holds {', '.join(langs)}")


# -- one tab-separated file --------------------------------------------------------------------------

def _lines(path: Path, entry: str | None) -> list[str]:
    """The file's lines without trailing blank ones; UTF-8 (a BOM is fine)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[:e.start].count(b"\n") + 1
        err = TableError if entry is None else DatasetError
        raise err(f"line {line}: not UTF-8 text ({e.reason})" if entry else f"not UTF-8 text ({e.reason})",
                  entry or f"line {line}") from e
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return [x[:-1] if x.endswith("\r") else x for x in lines]


def _read_tsv(path: Path, columns: list[str] | None, max_bytes: int | None) -> Corpus:
    size = path.stat().st_size
    if size == 0:
        raise TableError("the file is empty; it needs one `source<TAB>target` pair a line", "line 1")
    if max_bytes is not None and size > max_bytes:
        raise TableError(f"the file is {size} bytes, over the limit of {max_bytes}", "line 1")
    lines = _lines(path, None)
    if not lines:
        raise TableError("the file holds only blank lines; it needs one `source<TAB>target` pair a line", "line 1")
    langs = list(columns) if columns else ["1", "2"]
    width = max(2, len(langs))
    texts: dict[str, list[str]] = {lang: [] for lang in langs}
    fewest = None
    for n, line in enumerate(lines, start=1):
        where = f"line {n}"
        if not line.strip():
            continue  # a blank line between pairs
        fields = line.split("\t")
        if len(fields) < 2:
            raise TableError(f"no tab: expected `source<TAB>target`, got {line[:60]!r}", where)
        if len(fields) < width:
            raise TableError(f"{len(fields)} tab-separated fields, but columns names {width} languages", where)
        fewest = len(fields) if fewest is None else min(fewest, len(fields))
        for k, lang in enumerate(langs):
            value = fields[k].strip()
            if not value:
                raise TableError(f"column {k + 1} is empty: every pair needs a sentence on both sides", where)
            if len(value) > MAX_LINE_CHARS:
                raise TableError(f"column {k + 1} is {len(value)} characters, over the limit of {MAX_LINE_CHARS}",
                                 where)
            texts[lang].append(value)
    return Corpus(langs, texts, fields=fewest)


# -- an archive of aligned files ---------------------------------------------------------------------

def _visible(p: Path) -> bool:
    return not p.name.startswith(".") and p.name != "__MACOSX"


def _root(folder: Path) -> Path:
    entries = [p for p in folder.iterdir() if _visible(p)]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return folder


def _read_aligned(files: dict[str, Path], root: Path) -> dict[str, list[str]]:
    texts: dict[str, list[str]] = {}
    first: tuple[str, int] | None = None
    for lang, f in sorted(files.items()):
        entry = f.relative_to(root).as_posix()
        if f.stat().st_size == 0:
            raise DatasetError("is empty; it needs one sentence a line", entry)
        lines = [x.strip() for x in _lines(f, entry)]
        if not lines:
            raise DatasetError("holds only blank lines; it needs one sentence a line", entry)
        if first is None:
            first = (entry, len(lines))
        elif len(lines) != first[1]:
            raise DatasetError(f"has {len(lines)} lines but {first[0]} has {first[1]}: aligned files need one "
                               "sentence a line, the same number in each", entry)
        long = next((i for i, x in enumerate(lines) if len(x) > MAX_LINE_CHARS), None)
        if long is not None:
            raise DatasetError(f"line {long + 1} is {len(lines[long])} characters, over the limit of "
                               f"{MAX_LINE_CHARS}", entry)
        texts[lang] = lines
    # a line blank in one file but not in another is a misalignment; blank in every file is skipped
    n = first[1] if first else 0
    keep = []
    for i in range(n):
        blank = [lang for lang in texts if not texts[lang][i]]
        if blank and len(blank) < len(texts):
            lang = blank[0]
            raise DatasetError(f"line {i + 1} is empty where the other file(s) have a sentence",
                               files[lang].relative_to(root).as_posix())
        if not blank:
            keep.append(i)
    return {lang: [t[i] for i in keep] for lang, t in texts.items()}


def _read_archive(folder: Path) -> Corpus:
    if not folder.is_dir():
        raise DatasetError("a parallel-archive dataset is an archive (zip, tar, tar.gz) of train.<lang> files")
    root = _root(folder)
    splits: dict[str, dict[str, Path]] = {"train": {}, "val": {}}
    for p in sorted(root.iterdir()):
        m = SPLIT_FILE.match(p.name) if p.is_file() and _visible(p) else None
        if m:
            split = "train" if m["split"] == "train" else "val"
            if m["lang"] in splits[split]:
                raise DatasetError(f"a second {split} file for language {m['lang']!r}",
                                   p.relative_to(folder).as_posix())
            splits[split][m["lang"]] = p
    train, val = splits["train"], splits["val"]
    if len(train) < 2:
        found = ", ".join(sorted(p.name for p in root.iterdir() if _visible(p))[:8]) or "nothing"
        raise DatasetError(f"the archive needs aligned files train.<lang> for at least two languages "
                           f"(e.g. train.de and train.en); it holds {found}")
    if val and set(val) != set(train):
        raise DatasetError(f"validation files for {', '.join(sorted(val))} but training files for "
                           f"{', '.join(sorted(train))}: give val.<lang> for every language or none",
                           next(iter(val.values())).relative_to(folder).as_posix())
    langs = sorted(train)
    return Corpus(langs, _read_aligned(train, folder), _read_aligned(val, folder) if val else None)
