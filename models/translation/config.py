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
from dataclasses import dataclass, field
from typing import Any, Literal

from models.common.checks import ConfigError, at_least_two, enforce

LANG = re.compile(r"^[A-Za-z0-9_-]{1,20}$")


@dataclass
class Config:
    # data
    source_lang: str | None = field(default=None, metadata={"doc": (
        "Language translated from (a short code such as `de`); picks the direction in an archive of aligned "
        "files or a tab-separated file with `columns`, else only labels the version.")})
    target_lang: str | None = field(default=None, metadata={"doc": (
        "Language translated into; with two languages, one of `source_lang` and `target_lang` is enough.")})
    columns: str | None = field(default=None, metadata={"doc": (
        "Tab-separated files only: the language of each column (`en,fr`); none: column 1 is the source, "
        "column 2 the target.")})
    val_fraction: float = field(default=0.05, metadata={"doc": (
        "Share of the pairs held out for validation when the data has no validation split of its own.")})
    max_val: int = field(default=2000, metadata={"doc": "At most this many pairs are held out for validation."})
    max_len: int = field(default=128, metadata={"doc": (
        "Subword tokens per sentence: longer training pairs are dropped, and served text is limited to "
        "`max_len` - 1.")})
    lowercase: bool = field(default=False, metadata={"doc": (
        "The tokenizers lowercase the text (served text too), and BLEU is scored case-insensitively.")})
    # tokenisation
    tokenizer: Literal["bpe", "unigram", "word"] = field(default="bpe", metadata={"doc": (
        "Subword model trained on the training split: `bpe`, `unigram`, or `word` (whole words, for tiny test "
        "languages).")})
    vocab_size: int = field(default=8000, metadata={"doc": (
        "Vocabulary size per side (source and target vocabularies are separate).")})
    # network
    arch: Literal["transformer", "lstm"] = field(default="transformer", metadata={"doc": (
        "`transformer`, or `lstm` (an LSTM encoder-decoder with attention).")})
    d_model: int = field(default=256, metadata={"doc": "Transformer width; lstm: hidden size."})
    layers: int = field(default=3, metadata={"doc": "Encoder and decoder layers each."})
    heads: int = field(default=4, metadata={"doc": "transformer only: attention heads (must divide `d_model`)."})
    ffn: int = field(default=1024, metadata={"doc": "transformer only: width of the feed-forward layers."})
    dropout: float = field(default=0.1, metadata={"doc": "Dropout."})
    tie_embeddings: bool = field(default=True, metadata={"doc": (
        "The decoder's input embedding is also its output projection.")})
    # optimisation
    epochs: int = field(default=30, metadata={"doc": "Passes over the training pairs."})
    batch_size: int = field(default=128, metadata={"doc": (
        "Sentence pairs per step (batches are bucketed by length).")})
    lr: float = field(default=1e-3, metadata={"doc": "Peak learning rate, reached at the end of the warm-up."})
    warmup_steps: int = field(default=800, metadata={"doc": "Steps of linear warm-up to `lr`."})
    scheduler: Literal["inverse_sqrt", "cosine", "constant"] = field(default="inverse_sqrt", metadata={"doc": (
        "Learning-rate schedule after the warm-up.")})
    weight_decay: float = field(default=0.0, metadata={"doc": "Weight decay."})
    label_smoothing: float = field(default=0.1, metadata={"doc": "Label smoothing of the cross-entropy loss."})
    clip_norm: float = field(default=1.0, metadata={"doc": "Gradient norm clipping (0: off)."})
    max_minutes: float | None = field(default=None, metadata={"doc": (
        "Stop training after this many minutes, then evaluate and export (the schedule does not depend on the "
        "run's length, so stopping early is sound); none: no limit.")})
    seed: int = field(default=0, metadata={"doc": "Random seed of the run."})
    # evaluation (corpus sacreBLEU on the validation split after training)
    eval_beam_size: int = field(default=4, metadata={"doc": (
        "Beam of the sacreBLEU evaluation on the validation split, and the version's default `beam_size` when "
        "served.")})
    length_penalty: float = field(default=0.6, metadata={"doc": (
        "GNMT alpha of that beam search, and the served default.")})
    amp: bool = field(default=True, metadata={"doc": "bfloat16 autocast on a GPU; no effect on the CPU."})

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
        enforce(self, checks)
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
