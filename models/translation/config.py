"""Hyperparameters of a translation run (stdlib only: the API validates job configs with it).

Direction: `source_lang` and `target_lang` name the languages. An archive of aligned files
(train.de / train.en ...) needs them to pick the direction (one is enough when the archive holds two
languages); for a tab-separated file, `columns` names the language of each column ("en,fr" for the
Anki fra.txt layout, whose English comes first), and without it the first column is the source and the
second the target (source_lang / target_lang then only label the version).

The defaults are a small Transformer (d_model 256, 3+3 layers, 4 heads) with shared-nothing BPE
vocabularies of 8000 per side, label smoothing 0.1 and an inverse-square-root schedule after a linear
warm-up, sized for a bounded CPU run on Multi30k (see BENCHMARKS.md); `max_minutes` bounds a run's
training time (the schedule does not depend on the run's length, so stopping early is sound).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from models.common.checks import ConfigError, at_least_two

LANG = re.compile(r"^[A-Za-z0-9_-]{1,20}$")


@dataclass
class Config:
    # data
    source_lang: str | None = None
    target_lang: str | None = None
    columns: str | None = None  # tsv only: "en,fr" = the language of column 1 and column 2
    val_fraction: float = 0.05  # when the data has no validation split of its own
    max_val: int = 2000  # at most this many pairs carved for validation
    max_len: int = 128  # subword tokens per sentence: longer training pairs are dropped; serving's input limit
    lowercase: bool = False
    # tokenisation
    tokenizer: Literal["bpe", "unigram", "word"] = "bpe"  # word: whole words (tiny test languages)
    vocab_size: int = 8000  # per side (source and target vocabularies are separate)
    # network
    arch: Literal["transformer", "lstm"] = "transformer"
    d_model: int = 256  # transformer width; lstm: hidden size
    layers: int = 3  # encoder and decoder layers each
    heads: int = 4  # transformer only
    ffn: int = 1024  # transformer only
    dropout: float = 0.1
    tie_embeddings: bool = True  # decoder input embedding = output projection
    # optimisation
    epochs: int = 30
    batch_size: int = 128  # sentence pairs per step (batches are bucketed by length)
    lr: float = 1e-3  # peak, reached at the end of warm-up
    warmup_steps: int = 800
    scheduler: Literal["inverse_sqrt", "cosine", "constant"] = "inverse_sqrt"  # after the warm-up
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    clip_norm: float = 1.0
    max_minutes: float | None = None  # stop training after this many minutes (then evaluate and export)
    seed: int = 0
    # evaluation (corpus sacreBLEU on the validation split after training)
    eval_beam_size: int = 4
    length_penalty: float = 0.6
    amp: bool = True  # bfloat16 autocast on a GPU; no effect on the CPU

    def __post_init__(self) -> None:
        langs = [x.strip() for x in self.columns.split(",")] if isinstance(self.columns, str) else []
        checks = [
            ("source_lang", self.source_lang is None or bool(LANG.match(str(self.source_lang))),
             "must be a short language code such as 'de'"),
            ("target_lang", self.target_lang is None or bool(LANG.match(str(self.target_lang))),
             "must be a short language code such as 'en'"),
            ("target_lang", self.target_lang is None or self.target_lang != self.source_lang,
             "must differ from source_lang"),
            ("columns", self.columns is None or (len(langs) >= 2 and all(LANG.match(x) for x in langs)
                                                 and len(set(langs)) == len(langs)),
             "must name the language of each tab-separated column, e.g. 'en,fr'"),
            ("val_fraction", 0 < self.val_fraction < 1, "must be > 0 and < 1"),
            ("max_val", self.max_val >= 1, "must be >= 1"),
            ("max_len", 4 <= self.max_len <= 1024, "must be between 4 and 1024"),
            ("vocab_size", 16 <= self.vocab_size <= 100_000, "must be between 16 and 100000"),
            ("d_model", 8 <= self.d_model <= 4096, "must be between 8 and 4096"),
            ("layers", 1 <= self.layers <= 24, "must be between 1 and 24"),
            ("heads", 1 <= self.heads <= 64 and self.d_model % self.heads == 0, "must divide d_model (1 to 64)"),
            ("ffn", 8 <= self.ffn <= 65_536, "must be between 8 and 65536"),
            ("dropout", 0 <= self.dropout < 1, "must be >= 0 and < 1"),
            ("epochs", 1 <= self.epochs <= 10_000, "must be between 1 and 10000"),
            ("batch_size", 1 <= self.batch_size <= 65_536, "must be between 1 and 65536"),
            ("lr", 0 < self.lr <= 10, "must be > 0 and <= 10"),
            ("warmup_steps", self.warmup_steps >= 0, "must be >= 0"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "must be >= 0 and < 1"),
            ("clip_norm", self.clip_norm >= 0, "must be >= 0 (0: off)"),
            ("max_minutes", self.max_minutes is None or self.max_minutes > 0, "must be > 0"),
            ("eval_beam_size", 1 <= self.eval_beam_size <= 16, "must be between 1 and 16"),
            ("length_penalty", self.length_penalty >= 0, "must be >= 0"),
        ]
        for name, ok, message in checks:
            if not ok:
                raise ValueError(f"{name} {message} (got {getattr(self, name)!r})")
        if self.columns is not None and self.source_lang is not None and self.source_lang not in langs:
            raise ValueError(f"source_lang {self.source_lang!r} is not one of columns {self.columns!r}")
        if self.columns is not None and self.target_lang is not None and self.target_lang not in langs:
            raise ValueError(f"target_lang {self.target_lang!r} is not one of columns {self.columns!r}")


def check_against_dataset(cfg: Config, stats: dict[str, Any]) -> None:
    """What models/translation/data.py's read and pick would refuse once the job ran (see models/common/checks.py)."""
    has_val = bool((stats.get("splits") or {}).get("val"))
    at_least_two(stats, "rows", "sentence pair(s)", has_val)
    langs = stats.get("languages")
    if isinstance(langs, list):  # an archive of train.<lang> files: the languages are the files'
        for key in ("source_lang", "target_lang"):
            lang = getattr(cfg, key)
            if lang is not None and lang not in langs:
                raise ConfigError(key, f"{lang!r} is not in the dataset, which holds {', '.join(langs)}")
        _direction(cfg, langs, "the dataset holds")
    elif cfg.columns is not None:  # a tab-separated file whose columns the config names
        names = [c.strip() for c in cfg.columns.split(",")]
        fields = stats.get("min_fields")
        if isinstance(fields, int) and len(names) > fields:
            raise ConfigError("columns", f"names {len(names)} languages, but some lines of the dataset have only "
                                         f"{fields} tab-separated fields")
        _direction(cfg, names, "columns names")


def _direction(cfg: Config, langs: list[str], holds: str) -> None:
    if cfg.source_lang and cfg.target_lang or len(langs) == 2 and (cfg.source_lang or cfg.target_lang):
        return
    key = "target_lang" if cfg.source_lang else "source_lang"
    raise ConfigError(key, f"{holds} {', '.join(langs)}: set source_lang and target_lang to say which way to "
                           "translate" + (" (one of them is enough with two languages)" if len(langs) == 2 else ""))
