"""Machine translation with PyTorch (workers and tests only; the API never imports this).

    load_dataset(path, fmt, cfg) -> Prepared      direction, validation split, subword vocabularies, ids
    build(cfg, data) -> nn.Module                 Transformer or LSTM + attention (networks.py)
    train(cfg, data, device, report, checkpoint=None, resume=None, init=None) -> (module, metrics)
    evaluate(module, data, device) -> {"bleu", "loss"}   corpus sacreBLEU of beam search on the validation split
    export_artifacts(module, folder, data) -> signature  model.onnx (encoder), decoder.onnx, tokenizers
    check_parity(module, folder, data) -> dict           ONNX decoding == PyTorch decoding, greedy and beam 4
    version_metadata(cfg, data)

Batches hold `batch_size` sentence pairs of similar length (sorted within chunks of 100 batches, then
shuffled), the loss is label-smoothed cross-entropy over target tokens, and the learning rate rises
linearly for `warmup_steps` and then decays as 1/sqrt(step) (or cosine, or stays). `report(step, ...)`
after every step; `checkpoint(state)` after every epoch; `resume=` continues where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from models.common import calibration, loop, text
from models.translation import data as datasets
from models.translation import evaluation
from models.translation import export as graphs
from models.translation.config import Config
from models.translation.networks import LSTMSeq2Seq, Transformer

PARITY_EXAMPLES = 16
EVAL_BATCH = evaluation.EVAL_BATCH
SIGNATURE = {"inputs": [{"name": "src", "datatype": "INT64", "shape": [-1, -1]}],
             "outputs": [{"name": "tokens", "datatype": "INT64", "shape": [-1, -1, -1]},
                         {"name": "scores", "datatype": "FP32", "shape": [-1, -1]}]}


@dataclass
class Prepared:
    source_lang: str
    target_lang: str
    src_tok: Tokenizer
    tgt_tok: Tokenizer
    train_src: list[list[int]]  # ids without EOS
    train_tgt: list[list[int]]
    val_src: list[list[int]]  # truncated to max_len - 1 (EOS appended when batched)
    val_tgt: list[list[int]]
    val_src_text: list[str]
    val_ref_text: list[str]
    max_len: int
    dropped: int = 0  # training pairs longer than max_len
    info: dict[str, Any] = field(default_factory=dict)  # e.g. the BLEU signature of the last evaluation


def make_tokenizer(texts: list[str], cfg: Config) -> Tokenizer:
    return text.train_tokenizer(texts, cfg.vocab_size, kind=cfg.tokenizer, lowercase=cfg.lowercase)


def load_dataset(path: Path, fmt: str, cfg: Config) -> Prepared:
    columns = [c.strip() for c in cfg.columns.split(",")] if cfg.columns else None
    return prepare(cfg, datasets.read(path, fmt, columns))


def prepare(cfg: Config, corpus: datasets.Corpus) -> Prepared:
    """Picks the direction, carves the validation split (seeded), trains the two vocabularies on the
    training split only and turns every sentence into ids."""
    src_lang, tgt_lang = datasets.pick(corpus, cfg.source_lang, cfg.target_lang)
    src, tgt = corpus.texts[src_lang], corpus.texts[tgt_lang]
    if corpus.val is not None:
        tr_s, tr_t, va_s, va_t = src, tgt, corpus.val[src_lang], corpus.val[tgt_lang]
    else:
        n = len(src)
        if n < 2:
            raise ValueError(f"the dataset has {n} sentence pair; at least 2 are needed to hold one out")
        order = np.random.default_rng(cfg.seed).permutation(n)
        n_val = min(n - 1, cfg.max_val, max(1, round(n * cfg.val_fraction)))
        val_idx, tr_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        tr_s, tr_t = [src[i] for i in tr_idx], [tgt[i] for i in tr_idx]
        va_s, va_t = [src[i] for i in val_idx], [tgt[i] for i in val_idx]
    src_tok, tgt_tok = make_tokenizer(tr_s, cfg), make_tokenizer(tr_t, cfg)
    ids_s, ids_t = text.encode_batch(src_tok, tr_s), text.encode_batch(tgt_tok, tr_t)
    keep = [i for i, (a, b) in enumerate(zip(ids_s, ids_t, strict=True))
            if 0 < len(a) < cfg.max_len and 0 < len(b) < cfg.max_len]
    if not keep:
        raise ValueError(f"no training pair is shorter than max_len={cfg.max_len} subword tokens")
    val_s = [x[: cfg.max_len - 1] for x in text.encode_batch(src_tok, va_s)]
    val_t = [x[: cfg.max_len - 1] for x in text.encode_batch(tgt_tok, va_t)]
    return Prepared(src_lang, tgt_lang, src_tok, tgt_tok, [ids_s[i] for i in keep], [ids_t[i] for i in keep],
                    val_s, val_t, va_s, va_t, cfg.max_len, len(ids_s) - len(keep), {"config": asdict(cfg)})


def build(cfg: Config, data: Prepared) -> nn.Module:
    sv, tv = data.src_tok.get_vocab_size(), data.tgt_tok.get_vocab_size()
    if cfg.arch == "lstm":
        return LSTMSeq2Seq(sv, tv, cfg.d_model, cfg.layers, cfg.dropout, cfg.tie_embeddings)
    return Transformer(sv, tv, cfg.d_model, cfg.layers, cfg.heads, cfg.ffn, cfg.dropout,
                       max_positions=max_positions(cfg.max_len), tie=cfg.tie_embeddings)


def max_positions(max_len: int) -> int:
    return 2 * max_len + 16  # decoder positions up to max_length 2 * max_len + 10


def steps_per_epoch(cfg: Config, data: Prepared) -> int:
    return math.ceil(len(data.train_src) / cfg.batch_size)


def total_steps(cfg: Config, data: Prepared) -> int:
    return cfg.epochs * steps_per_epoch(cfg, data)


def _batches(data: Prepared, bs: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Index batches of similar lengths: shuffle, sort within chunks of 100 batches, shuffle the batches."""
    n = len(data.train_src)
    order = rng.permutation(n)
    lengths = np.array([len(data.train_src[i]) + len(data.train_tgt[i]) for i in range(n)])
    out = []
    chunk = bs * 100
    for c in range(0, n, chunk):
        idx = order[c:c + chunk]
        idx = idx[np.argsort(lengths[idx], kind="stable")]
        out.extend(idx[i:i + bs] for i in range(0, len(idx), bs))
    return [out[i] for i in rng.permutation(len(out))]


def _pad(rows: list[list[int]], prefix: list[int] = (), suffix: list[int] = ()) -> torch.Tensor:
    width = max(len(r) for r in rows) + len(prefix) + len(suffix)
    out = torch.zeros(len(rows), width, dtype=torch.int64)
    for i, r in enumerate(rows):
        seq = [*prefix, *r, *suffix]
        out[i, :len(seq)] = torch.tensor(seq, dtype=torch.int64)
    return out


def make_batch(src: list[list[int]], tgt: list[list[int]], device: torch.device):
    """-> src [B, S] (EOS-terminated), tgt_in [B, T] (BOS first), tgt_out [B, T] (EOS last), PAD-padded."""
    return (_pad(src, suffix=[text.EOS]).to(device), _pad(tgt, prefix=[text.BOS]).to(device),
            _pad(tgt, suffix=[text.EOS]).to(device))


def _lr_factor(cfg: Config, total: int) -> Callable[[int], float]:
    warm = max(1, cfg.warmup_steps)

    def factor(s: int) -> float:
        s = s + 1
        if s <= warm:
            return s / warm
        if cfg.scheduler == "inverse_sqrt":
            return math.sqrt(warm / s)
        if cfg.scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, total - warm))))
        return 1.0

    return factor


def _loss(model: nn.Module, batch, smoothing: float, amp: bool, device: torch.device) -> tuple[torch.Tensor, int]:
    src, tgt_in, tgt_out = batch
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(src, tgt_in)
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=text.PAD,
                           label_smoothing=smoothing, reduction="sum")
    tokens = int((tgt_out != text.PAD).sum())
    return loss, tokens


class _Run(loop.Recipe):
    """One run (models/common/loop.py): label-smoothed cross-entropy per target token over length-bucketed
    batches drawn afresh from (seed, epoch) each epoch; max_minutes ends the run early."""

    shuffle = "numpy-epoch"

    def __init__(self, cfg: Config, data: Prepared, device: torch.device, init: dict[str, torch.Tensor] | None,
                 resume: dict[str, Any] | None):
        self.cfg, self.data, self.device = cfg, data, device
        self.model = build(cfg, data).to(device)
        if init is not None and resume is None:
            self.model.load_state_dict(init, strict=False)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           _lr_factor(cfg, max(1, total_steps(cfg, data))))
        self.clip_norm = cfg.clip_norm or None
        self.max_seconds = cfg.max_minutes * 60 if cfg.max_minutes else None
        self.epochs, self.steps_per_epoch = cfg.epochs, steps_per_epoch(cfg, data)
        self.amp = cfg.amp and device.type == "cuda"

    def start_epoch(self, epoch: int) -> None:
        self.model.train()
        self.loss_sum, self.tok_sum = 0.0, 0

    def batches(self, epoch: int) -> list[np.ndarray]:
        return _batches(self.data, self.cfg.batch_size, self.rng)

    def train_step(self, idx: np.ndarray, epoch: int, i: int) -> loop.Step:
        d = self.data
        batch = make_batch([d.train_src[j] for j in idx], [d.train_tgt[j] for j in idx], self.device)
        loss, tokens = _loss(self.model, batch, self.cfg.label_smoothing, self.amp, self.device)
        self.loss_sum, self.tok_sum = self.loss_sum + loss.item(), self.tok_sum + tokens
        return loop.Step(loss / max(1, tokens), {"loss": loss.item() / max(1, tokens)})

    def end_epoch(self, done: int, metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        val_loss = validation_loss(self.model, self.data, self.device)
        metrics = {"train_loss": self.loss_sum / max(1, self.tok_sum), "val_loss": val_loss,
                   "epochs_run": float(done), "train_pairs": float(len(self.data.train_src))}
        return metrics, {"epoch": float(done), "val_loss": val_loss}


train = loop.trainer(_Run)


@torch.no_grad()
def validation_loss(model: nn.Module, data: Prepared, device: torch.device | str, batch_size: int = 128) -> float:
    """Mean cross-entropy (no smoothing) per target token on the validation split."""
    device = torch.device(device)
    was = model.training
    model.eval()
    loss_sum, tok_sum = 0.0, 0
    for i in range(0, len(data.val_src), batch_size):
        batch = make_batch(data.val_src[i:i + batch_size], data.val_tgt[i:i + batch_size], device)
        loss, tokens = _loss(model, batch, 0.0, False, device)
        loss_sum, tok_sum = loss_sum + loss.item(), tok_sum + tokens
    model.train(was)
    return loss_sum / max(1, tok_sum)


def translate(model: nn.Module, data: Prepared, sources: list[list[int]], device: torch.device | str,
              beam_size: int = 4, length_penalty: float = 0.6, batch_size: int = EVAL_BATCH) -> list[str]:
    """Target text of each source (ids without EOS), by decoding.search over the cached PyTorch step."""
    dec = graphs.TorchSeq2Seq(model, device, cached=True)
    return evaluation.translate(lambda src, max_length, beam, lp: dec.decode(src, max_length, beam, 1, lp),
                                data.tgt_tok, sources, beam_size, length_penalty, batch_size)


bleu = evaluation.bleu


def evaluate(model: nn.Module, data: Prepared, device: torch.device | str, beam_size: int | None = None,
             length_penalty: float | None = None) -> dict[str, float]:
    """Corpus sacreBLEU (default 13a tokenisation, mixed case) of beam search on the validation split,
    against its one reference each; the signature string is kept in data.info for the version metadata."""
    dec = graphs.TorchSeq2Seq(model, device, cached=True)
    score, signature, hyps = evaluation.validation_bleu(
        data, lambda src, max_length, beam, lp: dec.decode(src, max_length, beam, 1, lp), beam_size, length_penalty)
    data.info["bleu_signature"] = signature
    data.info["examples"] = [{"source": s, "reference": r, "translation": h}
                             for s, r, h in zip(data.val_src_text[:3], data.val_ref_text[:3], hyps[:3], strict=True)]
    return {"bleu": score, "loss": validation_loss(model, data, device)}


def export_artifacts(model: nn.Module, folder: Path, data: Prepared) -> dict[str, Any]:
    """model.onnx (encoder), decoder.onnx (decoder step), source/target.tokenizer.json -> the signature."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    graphs.export(model, folder)
    text.save(data.src_tok, folder / "source.tokenizer.json")
    text.save(data.tgt_tok, folder / "target.tokenizer.json")
    return {k: [dict(x) for x in v] for k, v in SIGNATURE.items()}


def calibration_batches(data: Prepared, count: int, batch_size: int) -> Iterator[dict[str, dict[str, np.ndarray]]]:
    """Training pairs: the encoder's source ids (EOS-terminated) and the target ids the decoder steps
    through, BOS first (models.contract.Family.calibration)."""
    for idx in calibration.rows(len(data.train_src), count, batch_size):
        yield {calibration.ENCODER: {"src": graphs.pad_batch([data.train_src[i] + [text.EOS] for i in idx])},
               calibration.DECODER: {"token": graphs.pad_batch([[text.BOS] + data.train_tgt[i] for i in idx])}}


def check_parity(model: nn.Module, folder: Path, data: Prepared) -> dict[str, Any]:
    sources = [s + [text.EOS] for s in data.val_src[:PARITY_EXAMPLES] if s] or [[text.UNK, text.EOS]]
    lp = data.info.get("config", {}).get("length_penalty", 0.6)
    return graphs.check_parity(model, Path(folder), sources, lp)


def version_metadata(cfg: Config, data: Prepared) -> dict[str, Any]:
    return {
        "source_lang": data.source_lang if data.source_lang != "1" else cfg.source_lang,
        "target_lang": data.target_lang if data.target_lang != "2" else cfg.target_lang,
        "arch": cfg.arch,
        "tokenizers": {"source": "source.tokenizer.json", "target": "target.tokenizer.json", "kind": cfg.tokenizer,
                       "source_vocab": data.src_tok.get_vocab_size(), "target_vocab": data.tgt_tok.get_vocab_size()},
        "max_source_tokens": cfg.max_len - 1,  # the encoder adds EOS
        "max_length": 2 * cfg.max_len + 10,
        "decoding": {"beam_size": cfg.eval_beam_size, "length_penalty": cfg.length_penalty},
        "bleu_signature": data.info.get("bleu_signature"),
        "examples": data.info.get("examples", []),
        "train_pairs": len(data.train_src), "val_pairs": len(data.val_src), "dropped_long_pairs": data.dropped,
    }
