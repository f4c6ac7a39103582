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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.captioning import data as datasets
from models.captioning.config import Config
from models.captioning.metrics import caption_scores
from models.captioning.networks import (
    Captioner,
    DecoderStepGraph,
    EncoderGraph,
    decoding_log_probs,
    freeze_encoder,
    load_encoder,
)
from models.classification.training import Normalise
from models.common import decoding, text
from models.common.errors import ParityError
from models.common.onednn import use_onednn_for
from models.common.onnx_export import export_batch_dynamic

Report = Callable[[int, dict[str, float]], None]
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


def train(
    cfg: Config, data: Prepared, device: torch.device | str, report: Report,
    checkpoint: Callable[[dict[str, Any]], None] | None = None, resume: dict[str, Any] | None = None,
    init: dict[str, torch.Tensor] | None = None,
) -> tuple[nn.Module, dict[str, float]]:
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    model = build(cfg, data)
    use_onednn_for(model)
    init_metrics: dict[str, float] = {}
    if init is not None and resume is None:
        init_metrics = {k: float(v) for k, v in load_encoder(model, init).items()}
    initialised = init is not None or (resume is not None and bool(resume.get("init_metrics")))
    frozen = cfg.freeze_backbone and initialised
    if frozen:
        freeze_encoder(model)
    model = model.to(device)
    enc_lr = cfg.encoder_lr if cfg.encoder_lr is not None else (cfg.lr / 10 if initialised else cfg.lr)
    groups = [{"params": [p for n, p in model.named_parameters() if not n.startswith("encoder.")], "lr": cfg.lr}]
    if not frozen and enc_lr > 0:
        groups.append({"params": list(model.encoder.parameters()), "lr": enc_lr})
    elif not frozen:
        freeze_encoder(model)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = cls(groups, weight_decay=cfg.weight_decay)
    sched = _scheduler(cfg, opt, max(1, total_steps(cfg, data)))
    shuffle = torch.Generator().manual_seed(cfg.seed)
    epoch, step = 0, 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        epoch, step = resume["epoch"], resume["step"]
        init_metrics = resume.get("init_metrics", {})
        shuffle.set_state(resume["rng"]["shuffle"])
        torch.set_rng_state(resume["rng"]["torch"])
        if device.type == "cuda" and "cuda" in resume["rng"]:
            torch.cuda.set_rng_state_all(resume["rng"]["cuda"])

    images = torch.from_numpy(data.train.images).to(device)
    pair_image = torch.from_numpy(data.train.pair_image).to(device)
    pair_tokens = torch.from_numpy(data.train.pair_tokens).to(device)
    normalise, n, bs = Normalise(data, device), len(pair_image), cfg.batch_size
    amp = cfg.amp and device.type == "cuda"
    spe = steps_per_epoch(cfg, data)
    metrics: dict[str, float] = dict(resume.get("metrics", {})) if resume else {}
    params = [p for p in model.parameters() if p.requires_grad]
    while epoch < cfg.epochs:
        model.train()
        if frozen:
            model.encoder.eval()  # its batch-norm statistics stay as loaded
        order = torch.randperm(n, generator=shuffle).to(device)
        total_loss = torch.zeros((), device=device)
        for i in range(spe):
            idx = order[i * bs:(i + 1) * bs]
            loss, _ = _loss(model, normalise(images[pair_image[idx]]), pair_tokens[idx], cfg.attention_reg, amp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            total_loss += loss.detach()
            report(step, {"epoch": epoch + (i + 1) / spe, "loss": loss.item(), "lr": sched.get_last_lr()[0]})
        epoch += 1
        val_loss = validation_loss(model, data, device)
        metrics = {"train_loss": float(total_loss) / spe, "val_loss": val_loss, **init_metrics}
        report(step, {"epoch": float(epoch), "val_loss": val_loss})
        if checkpoint is not None:
            rng = {"shuffle": shuffle.get_state(), "torch": torch.get_rng_state()}
            if device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state_all()
            checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "epoch": epoch, "step": step, "rng": rng, "metrics": metrics, "config": asdict(cfg),
                        "init_metrics": init_metrics})
    return model, metrics


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


# -- decoding with PyTorch (the same numpy search the ONNX graphs are served with) ----------------------
def _encode(model: Captioner, x: torch.Tensor) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    features, keys, h, c = model.encode(x)
    static = {"features": features.float().cpu().numpy(), "keys": keys.float().cpu().numpy()}
    return static, {"past_h": h.float().cpu().numpy(), "past_c": c.float().cpu().numpy()}


def cached_step(model: Captioner, device: torch.device) -> decoding.Step:
    """A step that feeds the last token and carries the LSTM state: what the ONNX decoder does."""
    def step(prefix, static, cache):
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
        logits, h, c, _ = model.step(t(prefix[:, -1]), t(static["features"]), t(static["keys"]),
                                     t(cache["past_h"]), t(cache["past_c"]))
        return (decoding_log_probs(logits.float()).cpu().numpy(),
                {"past_h": h.float().cpu().numpy(), "past_c": c.float().cpu().numpy()})
    return step


def recompute_step(model: Captioner, device: torch.device) -> decoding.Step:
    """A step that runs the whole prefix again from the encoder's initial state (the cache it is given is
    never advanced): a reference that shares nothing with the ONNX graph's state handling."""
    def step(prefix, static, cache):
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
        features, keys, h, c = t(static["features"]), t(static["keys"]), t(cache["past_h"]), t(cache["past_c"])
        tokens = t(prefix)
        for j in range(tokens.shape[1]):
            logits, h, c, _ = model.step(tokens[:, j], features, keys, h, c)
        return decoding_log_probs(logits.float()).cpu().numpy(), cache
    return step


@torch.no_grad()
def generate(model: Captioner, data: Prepared, images: np.ndarray, device: torch.device | str, beam_size: int = 3,
             n_best: int = 1, length_penalty: float = 1.0, max_length: int | None = None, reference: bool = False,
             batch_size: int = 128) -> list[list[decoding.Hypothesis]]:
    """uint8 [N, H, W, C] images -> per image up to n_best (tokens, score), best first."""
    device = torch.device(device)
    was = model.training
    model.eval()
    normalise = Normalise(data, device)
    step = (recompute_step if reference else cached_step)(model, device)
    out: list[list[decoding.Hypothesis]] = []
    for i in range(0, len(images), batch_size):
        x = normalise(torch.from_numpy(images[i:i + batch_size]).to(device))
        static, cache = _encode(model, x)
        out += decoding.search(step, static, cache, max_length=np.full(len(x), max_length or data.max_length),
                               beam_size=beam_size, n_best=n_best, length_penalty=length_penalty)
    model.train(was)
    return out


@torch.no_grad()
def pooled_features(model: Captioner, data: Prepared, images: np.ndarray, device: torch.device | str,
                    batch_size: int = 256) -> np.ndarray:
    """[N, D] mean-pooled encoder features, L2-normalised (the nearest-neighbour baseline's space)."""
    device = torch.device(device)
    was = model.training
    model.eval()
    normalise, out = Normalise(data, device), []
    for i in range(0, len(images), batch_size):
        f = model.encoder(normalise(torch.from_numpy(images[i:i + batch_size]).to(device))).float().mean((2, 3))
        out.append(F.normalize(f, dim=1).cpu().numpy())
    model.train(was)
    return np.concatenate(out) if out else np.zeros((0, model.encoder.dim), np.float32)


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
    captions = [text.decode(data.tokenizer, h[0][0]) if h else "" for h in hyps]
    out = {**caption_scores(captions, data.val.references), "loss": validation_loss(model, data, device)}
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
    x = data.val.images[:n].astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    mean = np.asarray(data.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(data.std, np.float32).reshape(1, -1, 1, 1)
    return ((x - mean) / std).astype(np.float32)


def check_parity(model: Captioner, folder: Path, data: Prepared, atol: float = 1e-3) -> dict[str, Any]:
    """Decodes held validation images with the ONNX graphs (decoding.OnnxSeq2Seq, LSTM state carried in
    the cache) and with PyTorch (the same search, each step recomputing the whole prefix), greedy and
    beam 4 (n_best 2): the tokens must be identical and the scores within atol; else ParityError."""
    import onnxruntime as ort

    folder = Path(folder)
    open_ = lambda f: ort.InferenceSession(str(folder / f), providers=["CPUExecutionProvider"])  # noqa: E731
    onnx = decoding.OnnxSeq2Seq(open_(ENCODER_FILE), open_(DECODER_FILE))
    model = model.to("cpu").eval()
    x = example_images(data)
    max_length = np.full(len(x), data.max_length, np.int64)
    worst, report = 0.0, {"examples": int(len(x)), "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider"}
    for beam, n_best in ((1, 1), (4, 2)):
        got = onnx.decode({"image": x}, max_length, decoding.Options(beam, n_best, 1.0))
        with torch.no_grad():
            static, cache = _encode(model, torch.from_numpy(x))
            want = decoding.search(recompute_step(model, torch.device("cpu")), static, cache, max_length=max_length,
                                   beam_size=beam, n_best=n_best, length_penalty=1.0)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            if [t for t, _ in g] != [t for t, _ in w]:
                raise ParityError(f"ONNX and PyTorch decoding (beam {beam}) give different captions for held "
                                  f"validation image {i}: {[t for t, _ in g]} vs {[t for t, _ in w]}")
            diff = max((abs(a - b) for (_, a), (_, b) in zip(g, w, strict=True)), default=0.0)
            worst = max(worst, diff)
        if worst > atol:
            raise ParityError(f"ONNX and PyTorch decoding (beam {beam}) scores differ by {worst:.3g} > {atol:g}")
    return {**report, "max_score_diff": float(worst), "atol": atol, "beams": [1, 4]}


def version_metadata(cfg: Config, data: Prepared) -> dict[str, Any]:
    return {"preprocessing": {"size": list(data.size), "channels": data.channels, "mean": data.mean,
                              "std": data.std},
            "max_length": data.max_length, "vocab_size": data.tokenizer.get_vocab_size(),
            "tokenizer": TOKENIZER_FILE, "decoder": DECODER_FILE,
            "encoder": {"arch": cfg.arch, "width": cfg.width, "depth": cfg.depth,
                        "grid": cfg.grid},
            "train_images": int(len(data.train.images)), "val_images": int(len(data.val.images)),
            "decoding": {"beam_size": cfg.eval_beam_size, "length_penalty": cfg.length_penalty}}
