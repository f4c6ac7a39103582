"""Image captioning with PyTorch (workers and tests only; the API never imports this).

    load_dataset(path, fmt, cfg) -> Prepared     images resized, captions normalised, a word vocabulary
    train(cfg, data, device, report, checkpoint=None, resume=None, init=None) -> (module, metrics)
    evaluate(module, data, device) -> bleu_1..bleu_4, cider (beam search on the validation images),
                                      loss, and two baselines scored the same way (see baselines())
    export_artifacts(module, folder, data)       model.onnx (encoder), decoder.onnx, target.tokenizer.json
    check_parity(module, folder, data)           ONNX decoding == PyTorch decoding, greedy and beam 4

Training is teacher forcing over every (image, caption) pair, with cross-entropy on the next word and
Show, Attend and Tell's doubly stochastic attention penalty. `init=` a state dict (init_from a
classification version, or a weights file) loads the encoder's backbone; freeze_backbone keeps it fixed.
No augmentation: a flip would swap "left" and "right".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.captioning import data as datasets
from models.captioning import evaluation
from models.captioning.config import Config
from models.captioning.decode import encode, generate, pooled_features, recompute_step
from models.captioning.metrics import caption_scores
from models.captioning.networks import Captioner, DecoderStepGraph, EncoderGraph, freeze_encoder, load_encoder
from models.common import calibration, decoding, decoding_parity, loop, text
from models.common.normalise import Normalise
from models.common.onnx_export import export_batch_dynamic

OPSET = 17
TOKENIZER_FILE = "target.tokenizer.json"
DECODER_FILE = "decoder.onnx"
ENCODER_FILE = "model.onnx"
PARITY_IMAGES = 16


@dataclass
class Split:
    images: np.ndarray  # uint8 [N, H, W, C]
    references: list[list[str]]  # normalised captions per image
    pair_image: np.ndarray  # int64 [M]: the image of each (image, caption) pair
    pair_tokens: np.ndarray  # int64 [M, L]: BOS w1 .. wn EOS PAD ..


@dataclass
class Prepared:
    tokenizer: Any  # tokenizers.Tokenizer (word level)
    train: Split
    val: Split
    size: tuple[int, int]
    channels: int
    mean: list[float]
    std: list[float]
    max_length: int
    arch: str = "lenet"
    width: int = 32
    depth: int = 20
    eval_beam_size: int = 3
    length_penalty: float = 1.0


def load_dataset(path: Path, fmt: str, cfg: Config) -> Prepared:
    train, val = datasets.load(Path(path), fmt, cfg.image_size, cfg.channels)
    return prepare(cfg, train, val)


def prepare(cfg: Config, train: datasets.Loaded, val: datasets.Loaded | None = None) -> Prepared:
    """Splits off validation by image when the dataset has no split (seeded), builds the vocabulary on
    the training captions, tokenises, measures mean/std."""
    if val is None:
        n = len(train.images)
        if n < 2:
            raise ValueError(f"the dataset has {n} image; at least 2 are needed to hold one out for validation")
        order = np.random.default_rng(cfg.seed).permutation(n)
        n_val = min(n - 1, max(1, round(n * cfg.val_fraction)))
        pick = lambda idx: datasets.Loaded(train.images[idx], [train.captions[i] for i in idx],  # noqa: E731
                                           [train.entries[i] for i in idx])
        train, val = pick(np.sort(order[n_val:])), pick(np.sort(order[:n_val]))
    refs_train = [[datasets.normalise(c) for c in caps] for caps in train.captions]
    refs_val = [[datasets.normalise(c) for c in caps] for caps in val.captions]
    tok = text.train_tokenizer([c for caps in refs_train for c in caps], cfg.vocab_size, kind="word",
                               min_frequency=cfg.min_frequency)
    pixels = train.images.reshape(-1, train.images.shape[-1]).astype(np.float64) / 255.0
    mean, std = pixels.mean(axis=0), np.maximum(pixels.std(axis=0), 1e-3)
    return Prepared(tok, _split(tok, train.images, refs_train, cfg.max_length),
                    _split(tok, val.images, refs_val, cfg.max_length), tuple(train.images.shape[1:3]),
                    int(train.images.shape[3]), [float(m) for m in mean], [float(s) for s in std], cfg.max_length,
                    cfg.arch, cfg.width, cfg.depth, cfg.eval_beam_size, cfg.length_penalty)


def _split(tok, images: np.ndarray, refs: list[list[str]], max_length: int) -> Split:
    flat = [(i, c) for i, caps in enumerate(refs) for c in caps]
    ids = text.encode_batch(tok, [c for _, c in flat])
    width = min(max_length, max((len(x) for x in ids), default=0)) + 2
    tokens = np.full((len(flat), width), text.PAD, np.int64)
    for j, x in enumerate(ids):
        x = x[:max_length]
        tokens[j, 0] = text.BOS
        tokens[j, 1:len(x) + 1] = x
        tokens[j, len(x) + 1] = text.EOS
    return Split(images, refs, np.asarray([i for i, _ in flat], np.int64), tokens)


def build(cfg: Config, data: Prepared) -> Captioner:
    if min(data.size) < 4:
        raise ValueError(f"images of {data.size[0]}x{data.size[1]} are too small; set image_size >= 8")
    return Captioner(cfg.arch, data.channels, data.size, cfg.width, cfg.depth, data.tokenizer.get_vocab_size(),
                     cfg.embed_dim, cfg.hidden, cfg.attention_dim, cfg.dropout, cfg.grid)


def steps_per_epoch(cfg: Config, data: Prepared) -> int:
    return math.ceil(len(data.train.pair_image) / cfg.batch_size)


def total_steps(cfg: Config, data: Prepared) -> int:
    return cfg.epochs * steps_per_epoch(cfg, data)


def _loss(model: Captioner, images: torch.Tensor, tokens: torch.Tensor, attention_reg: float,
          amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(training loss, summed next-word cross-entropy) of a batch; tokens trimmed to the batch's longest."""
    longest = int((tokens != text.PAD).sum(1).max())
    tokens = tokens[:, :longest]
    inp, target = tokens[:, :-1], tokens[:, 1:]
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=amp):
        logits, alphas = model(images, inp)
    mask = (target != text.PAD).float()
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
    ce_sum = (ce * mask.reshape(-1)).sum()
    loss = ce_sum / mask.sum()
    if attention_reg > 0:  # Xu et al.'s doubly stochastic penalty: every position attended about once
        total = (alphas.float() * mask.unsqueeze(-1)).sum(1)  # [N, P]
        loss = loss + attention_reg * ((1.0 - total) ** 2).mean()
    return loss, ce_sum.detach()


def _scheduler(cfg: Config, opt: torch.optim.Optimizer, total: int):
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                   total_steps=total + 1, pct_start=0.15, div_factor=10,
                                                   final_div_factor=100, cycle_momentum=False)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


class _Run(loop.Recipe):
    """One run (models/common/loop.py): teacher forcing over the (image, caption) pairs; an encoder loaded
    by init_from learns at a tenth of the lr (encoder_lr) or not at all (freeze_backbone)."""

    def __init__(self, cfg: Config, data: Prepared, device: torch.device, init: dict[str, torch.Tensor] | None,
                 resume: dict[str, Any] | None):
        self.cfg, self.data, self.device = cfg, data, device
        model = build(cfg, data)
        initialised = self.initialise(model, init, resume, load_encoder)
        self.frozen = cfg.freeze_backbone and initialised
        if self.frozen:
            freeze_encoder(model)
        self.model = model = model.to(device)
        enc_lr = cfg.encoder_lr if cfg.encoder_lr is not None else (cfg.lr / 10 if initialised else cfg.lr)
        groups = [{"params": [p for n, p in model.named_parameters() if not n.startswith("encoder.")], "lr": cfg.lr}]
        if not self.frozen and enc_lr > 0:
            groups.append({"params": list(model.encoder.parameters()), "lr": enc_lr})
        elif not self.frozen:
            freeze_encoder(model)
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = cls(groups, weight_decay=cfg.weight_decay)
        self.scheduler = _scheduler(cfg, self.optimizer, max(1, total_steps(cfg, data)))
        self.clip_norm = cfg.grad_clip or None
        self.images = torch.from_numpy(data.train.images).to(device)
        self.pair_image = torch.from_numpy(data.train.pair_image).to(device)
        self.pair_tokens = torch.from_numpy(data.train.pair_tokens).to(device)
        self.normalise, self.amp = Normalise(data, device), cfg.amp and device.type == "cuda"
        self.epochs, self.steps_per_epoch = cfg.epochs, steps_per_epoch(cfg, data)
        self.examples, self.batch_size = len(self.pair_image), cfg.batch_size

    def start_epoch(self, epoch: int) -> None:
        self.model.train()
        if self.frozen:
            self.model.encoder.eval()  # its batch-norm statistics stay as loaded
        self.total_loss = torch.zeros((), device=self.device)

    def train_step(self, idx: torch.Tensor, epoch: int, i: int) -> loop.Step:
        loss, _ = _loss(self.model, self.normalise(self.images[self.pair_image[idx]]), self.pair_tokens[idx],
                        self.cfg.attention_reg, self.amp)
        self.total_loss += loss.detach()
        return loop.Step(loss, {"loss": loss.item()})

    def end_epoch(self, done: int, metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        val_loss = validation_loss(self.model, self.data, self.device)
        metrics = {"train_loss": float(self.total_loss) / self.steps_per_epoch, "val_loss": val_loss,
                   **self.init_metrics}
        return metrics, {"epoch": float(done), "val_loss": val_loss}


train = loop.trainer(_Run)


@torch.no_grad()
def validation_loss(model: Captioner, data: Prepared, device: torch.device | str, batch_size: int = 256) -> float:
    """Mean next-word cross-entropy (teacher forcing) over the validation captions."""
    device = torch.device(device)
    was = model.training
    model.eval()
    normalise, split = Normalise(data, device), data.val
    ce, words = 0.0, 0
    for i in range(0, len(split.pair_image), batch_size):
        idx = split.pair_image[i:i + batch_size]
        tokens = torch.from_numpy(split.pair_tokens[i:i + batch_size]).to(device)
        x = normalise(torch.from_numpy(split.images[idx]).to(device))
        _, s = _loss(model, x, tokens, 0.0, False)
        ce += float(s)
        words += int((tokens[:, 1:] != text.PAD).sum())
    model.train(was)
    return ce / max(1, words)


def most_frequent_caption(references: list[list[str]]) -> str:
    """The training caption written most often; among equals (every Flickr8k caption is unique), the one
    whose words are the most common on average."""
    counts = Counter(c for caps in references for c in caps)
    words = Counter(w for caps in references for c in caps for w in c.split())
    top = max(counts.values())
    tied = [c for c, k in counts.items() if k == top]
    return max(tied, key=lambda c: (np.mean([math.log(words[w]) for w in c.split()]) if c.split() else -1, c))


def baselines(model: Captioner, data: Prepared, device: torch.device | str) -> dict[str, float]:
    """Two caption baselines on the validation split, scored like the model: the most frequent training
    caption for every image, and the first caption of the nearest training image (cosine similarity of
    the model's mean-pooled encoder features)."""
    refs = data.val.references
    frequent = most_frequent_caption(data.train.references)
    out = {f"baseline_frequent_{k}": v for k, v in caption_scores([frequent] * len(refs), refs).items()}
    train_f = pooled_features(model, data, data.train.images, device)
    val_f = pooled_features(model, data, data.val.images, device)
    nearest = (val_f @ train_f.T).argmax(1) if len(train_f) else np.zeros(len(val_f), int)
    hyps = [data.train.references[j][0] for j in nearest]
    out.update({f"baseline_nearest_{k}": v for k, v in caption_scores(hyps, refs).items()})
    return out


def evaluate(model: Captioner, data: Prepared, device: torch.device | str, beam_size: int | None = None,
             with_baselines: bool = True, length_penalty: float | None = None) -> dict[str, float]:
    """bleu_1..bleu_4 and cider of beam-search captions (eval_beam_size, length_penalty: what the version
    serves by default) of the validation images against their references, the teacher-forced loss, and
    (with_baselines) the two baselines' scores."""
    beam = beam_size or data.eval_beam_size
    lp = data.length_penalty if length_penalty is None else length_penalty
    hyps = generate(model, data, data.val.images, device, beam_size=beam, length_penalty=lp)
    out = {**evaluation.scores(data, hyps), "loss": validation_loss(model, data, device)}
    if with_baselines:
        out.update(baselines(model, data, device))
    return out


# -- export --------------------------------------------------------------------------------------------
def export_artifacts(model: Captioner, folder: Path, data: Prepared) -> dict[str, Any]:
    """model.onnx (encoder), decoder.onnx (one step) and target.tokenizer.json into folder; the serving
    signature (images in; token ids and scores out)."""
    folder = Path(folder)
    model = model.to("cpu").eval()
    image = torch.zeros(2, data.channels, *data.size)
    export_batch_dynamic(EncoderGraph(model).eval(), (image,), folder / ENCODER_FILE, ["image"],
                         ["features", "keys", "past_h", "past_c"], OPSET)
    with torch.no_grad():
        features, keys, h, c = model.encode(image)
    token = torch.full((2,), text.BOS, dtype=torch.int64)
    export_batch_dynamic(DecoderStepGraph(model).eval(), (token, features, keys, h, c), folder / DECODER_FILE,
                         ["token", "features", "keys", "past_h", "past_c"], ["log_probs", "present_h", "present_c"],
                         OPSET)
    model.eval()  # (an exporter restores its wrapper's mode; a wrapper made in train mode would leave the model so)
    text.save(data.tokenizer, folder / TOKENIZER_FILE)
    return {"inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, data.channels, *data.size]}],
            "outputs": [{"name": "tokens", "datatype": "INT64", "shape": [-1, -1, -1]},
                        {"name": "scores", "datatype": "FP32", "shape": [-1, -1]}]}


def example_images(data: Prepared, n: int = PARITY_IMAGES) -> np.ndarray:
    """float32 [n, C, H, W]: held validation images as the encoder graph takes them."""
    return calibration.images(data.val.images[:n], data.mean, data.std)


def calibration_batches(data: Prepared, count: int, batch_size: int) -> Iterator[dict[str, dict[str, np.ndarray]]]:
    """Training (image, caption) pairs: the encoder's images and the caption's tokens the decoder steps
    through (models.contract.Family.calibration)."""
    split = data.train
    for idx in calibration.rows(len(split.pair_image), count, batch_size):
        tokens = split.pair_tokens[idx]
        longest = int((tokens != text.PAD).sum(1).max())  # BOS .. EOS of the longest caption
        yield {ENCODER_FILE: {"image": calibration.images(split.images[split.pair_image[idx]], data.mean, data.std)},
               DECODER_FILE: {"token": np.ascontiguousarray(tokens[:, :longest - 1])}}


def check_parity(model: Captioner, folder: Path, data: Prepared) -> dict[str, Any]:
    """Held validation images captioned by the ONNX graphs (the LSTM state carried in the cache) and by
    PyTorch (each step recomputing the whole prefix), greedy and beam 4 (models/common/decoding_parity.py)."""
    model = model.to("cpu").eval()
    x = example_images(data)
    max_length = np.full(len(x), data.max_length, np.int64)

    def reference(beam: int, n_best: int) -> list[list[decoding.Hypothesis]]:
        with torch.no_grad():
            static, cache = encode(model, torch.from_numpy(x))
            return decoding.search(recompute_step(model, torch.device("cpu")), static, cache, max_length=max_length,
                                   beam_size=beam, n_best=n_best, length_penalty=1.0)

    return decoding_parity.check(decoding_parity.onnx_decoder(folder, ENCODER_FILE, DECODER_FILE), {"image": x},
                                 reference, max_length, length_penalty=1.0, what="held validation images")


def version_metadata(cfg: Config, data: Prepared) -> dict[str, Any]:
    return {"preprocessing": {"size": list(data.size), "channels": data.channels, "mean": data.mean,
                              "std": data.std},
            "max_length": data.max_length, "vocab_size": data.tokenizer.get_vocab_size(),
            "tokenizer": TOKENIZER_FILE, "decoder": DECODER_FILE,
            "encoder": {"arch": cfg.arch, "width": cfg.width, "depth": cfg.depth,
                        "grid": cfg.grid},
            "train_images": int(len(data.train.images)), "val_images": int(len(data.val.images)),
            "decoding": {"beam_size": cfg.eval_beam_size, "length_penalty": cfg.length_penalty}}
