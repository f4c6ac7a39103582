"""Subword and word vocabularies of the text families (tokenizers library; no torch, no network).

Every vocabulary reserves the same four ids, so the decoding module and both encoder-decoder families
agree on them: PAD=0 (batch padding), BOS=1 (the decoder's first input), EOS=2 (ends a hypothesis),
UNK=3. A tokenizer is trained on the uploaded data by the worker and saved beside the version's ONNX
files as JSON; the API loads it to turn request text into ids and ids back into text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int, kind: Literal["bpe", "unigram", "word"] = "bpe",
                    lowercase: bool = False, min_frequency: int = 1) -> Tokenizer:
    """bpe: byte-pair subwords over Metaspace pieces (decoding restores the spaces exactly); unigram: the
    unigram language-model subwords of SentencePiece, over the same pieces; word: whole words split on
    whitespace and punctuation (template captions, tiny test languages)."""
    norm = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=SPECIALS[UNK]))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, min_frequency=min_frequency,
                                      show_progress=False)
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, unk_token=SPECIALS[UNK],
                                          show_progress=False)
    elif kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token=SPECIALS[UNK]))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                            min_frequency=min_frequency, show_progress=False)
    else:
        raise ValueError(f"tokenizer kind {kind!r}: use bpe, unigram or word")
    tok.normalizer = normalizers.Sequence(norm)
    tok.train_from_iterator(texts, trainer=trainer)
    if [tok.token_to_id(s) for s in SPECIALS] != [PAD, BOS, EOS, UNK]:
        raise AssertionError("special tokens did not get ids 0-3")
    return tok


def encode(tok: Tokenizer, text: str) -> list[int]:
    """Ids of `text` without BOS/EOS."""
    return tok.encode(text, add_special_tokens=False).ids


def encode_batch(tok: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(list(texts), add_special_tokens=False)]


def decode(tok: Tokenizer, ids: Sequence[int]) -> str:
    """Text of `ids`; stops at the first EOS, skips PAD/BOS and negative padding."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if i >= 0 and i not in (PAD, BOS):
            out.append(i)
    return tok.decode(out, skip_special_tokens=True)


def save(tok: Tokenizer, path: Path) -> None:
    tok.save(str(path))


def load(path: Path) -> Tokenizer:
    return Tokenizer.from_file(str(path))
