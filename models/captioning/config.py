"""Hyperparameters of an image-captioning run (stdlib only: the API validates job configs with it).

The encoder is a classification backbone (arch/width/depth as in models/classification/config.py, so
that `init_from` a classification version trained with the same arch, width and depth loads its
weights); the decoder is a Show, Attend and Tell LSTM with soft attention over the feature map."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from models.common.checks import INIT_FROM_RULE, at_least_two, enforce, init_from_ok, same_backbone

INIT_FROM_TASKS = ("captioning", "classification")


@dataclass
class Config:
    epochs: int = field(default=20, metadata={"doc": "Passes over the training captions."})
    batch_size: int = field(default=64, metadata={"doc": "Captioned images per optimiser step."})
    lr: float = field(default=2e-3, metadata={"doc": (
        "The decoder's learning rate: the peak for `onecycle`, the initial one for `cosine`.")})
    encoder_lr: float | None = field(default=None, metadata={"doc": (
        "The encoder's learning rate; none: `lr` / 10 with `init_from`, else `lr`.")})
    optimizer: Literal["adam", "adamw"] = field(default="adam", metadata={"doc": "The optimiser."})
    weight_decay: float = field(default=0.0, metadata={"doc": "Weight decay."})
    scheduler: Literal["cosine", "onecycle", "none"] = field(default="cosine", metadata={"doc": (
        "Learning-rate schedule, stepped per batch.")})
    grad_clip: float = field(default=5.0, metadata={"doc": "Gradient norm clipping (0: off)."})
    image_size: int | None = field(default=None, metadata={"doc": (
        "Square side the images are resized to; none: the images' size when they all share one of at most 128, "
        "else 64.")})
    channels: Literal[1, 3] | None = field(default=None, metadata={"doc": (
        "1 (grey) or 3 (colour); none: 1 when every image is grey, else 3.")})
    val_fraction: float = field(default=0.1, metadata={"doc": (
        "Share of the images held out for validation (a COCO archive with train and val JSONs keeps its split).")})
    seed: int = field(default=0, metadata={"doc": "Random seed of the run."})
    # encoder: a classification backbone, whose last feature map has P = (H/4) * (W/4) positions
    arch: Literal["lenet", "resnet"] = field(default="lenet", metadata={"doc": (
        "The encoder, a classification family backbone: `lenet` (LeNet-5 style CNN) or `resnet` (CIFAR ResNet).")})
    width: int = field(default=32, metadata={"doc": "Channels of the encoder's first stage, as for classification."})
    depth: int = field(default=20, metadata={"doc": "resnet only: 6n+2 layers, as for classification."})
    init_from: str | None = field(default=None, metadata={"doc": (
        "Loads the encoder's backbone from a registered classification or captioning version (`name:3`, "
        "`name@alias`) of the same `arch`, `width` and `depth`, or from a weights file in the dataset archive.")})
    freeze_backbone: bool = field(default=False, metadata={"doc": "With `init_from`: train the decoder only."})
    grid: int = field(default=8, metadata={"doc": (
        "The feature map is average-pooled to about `grid` x `grid` attention positions (0: kept at H/4 x W/4).")})
    # decoder: a Show, Attend and Tell LSTM
    embed_dim: int = field(default=64, metadata={"doc": "Size of the decoder's word embeddings."})
    hidden: int = field(default=256, metadata={"doc": "Hidden size of the decoder's LSTM."})
    attention_dim: int = field(default=128, metadata={"doc": "Size of the soft attention's hidden layer."})
    dropout: float = field(default=0.3, metadata={"doc": "Dropout in the decoder."})
    attention_reg: float = field(default=0.0, metadata={"doc": (
        "Weight of the doubly stochastic attention penalty (Xu et al.): (1 - attention a position gets)^2.")})
    # vocabulary and decoding
    vocab_size: int = field(default=5000, metadata={"doc": "Words kept (most frequent, specials included)."})
    min_frequency: int = field(default=1, metadata={"doc": (
        "Words seen fewer times in the training captions are left out of the vocabulary.")})
    max_length: int = field(default=30, metadata={"doc": (
        "Longest caption (words) trained on and written; longer ones are truncated.")})
    eval_beam_size: int = field(default=3, metadata={"doc": (
        "Beam of the BLEU/CIDEr evaluation, and the version's default `beam_size` when served.")})
    length_penalty: float = field(default=1.0, metadata={"doc": (
        "GNMT alpha of that beam search, and the served default; higher: longer captions.")})
    amp: bool = field(default=True, metadata={"doc": "bfloat16 autocast on a GPU; no effect on the CPU."})

    def __post_init__(self) -> None:
        checks = [
            ("epochs", 1 <= self.epochs <= 10_000, "must be between 1 and 10000"),
            ("batch_size", 1 <= self.batch_size <= 65_536, "must be between 1 and 65536"),
            ("lr", 0 < self.lr <= 10, "must be > 0 and <= 10"),
            ("encoder_lr", self.encoder_lr is None or 0 <= self.encoder_lr <= 10, "must be >= 0 and <= 10"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("grad_clip", self.grad_clip >= 0, "must be >= 0 (0: off)"),
            ("image_size", self.image_size is None or 8 <= self.image_size <= 512, "must be between 8 and 512"),
            ("val_fraction", 0 < self.val_fraction < 1, "must be > 0 and < 1"),
            ("width", 1 <= self.width <= 1024, "must be between 1 and 1024"),
            ("depth", 8 <= self.depth <= 200 and (self.depth - 2) % 6 == 0,
             "must be 6n+2 between 8 and 200 (8, 14, 20, 32, 44, 56, 110)"),
            ("init_from", init_from_ok(self.init_from), INIT_FROM_RULE),
            ("freeze_backbone", not self.freeze_backbone or self.init_from is not None, "needs init_from"),
            ("grid", 0 <= self.grid <= 128, "must be between 0 (no pooling) and 128"),
            ("embed_dim", 1 <= self.embed_dim <= 4096, "must be between 1 and 4096"),
            ("hidden", 1 <= self.hidden <= 8192, "must be between 1 and 8192"),
            ("attention_dim", 1 <= self.attention_dim <= 4096, "must be between 1 and 4096"),
            ("dropout", 0 <= self.dropout < 1, "must be >= 0 and < 1"),
            ("attention_reg", self.attention_reg >= 0, "must be >= 0"),
            ("vocab_size", 5 <= self.vocab_size <= 200_000, "must be between 5 and 200000"),
            ("min_frequency", self.min_frequency >= 1, "must be >= 1"),
            ("max_length", 1 <= self.max_length <= 200, "must be between 1 and 200"),
            ("eval_beam_size", 1 <= self.eval_beam_size <= 16, "must be between 1 and 16"),
            ("length_penalty", 0 <= self.length_penalty <= 10, "must be between 0 and 10"),
        ]
        enforce(self, checks)


def check_against_dataset(cfg: Config, stats: dict[str, Any]) -> None:
    """What models/captioning/training.py's prepare would refuse once the job ran."""
    at_least_two(stats, "train_images", "training image(s)", bool(stats.get("val_images")))


def check_init_from(cfg: Config, ref: str, task: str, meta: dict[str, Any], stats: dict[str, Any]) -> None:
    """The encoder's backbone is loaded: arch, width, depth and channels must match (not the image size)."""
    theirs = (meta.get("config") or {}) if task == "classification" else (meta.get("encoder") or {})
    images, grey = stats.get("images"), stats.get("grey_images")
    channels = cfg.channels or ((1 if grey == images else 3) if isinstance(images, int) and isinstance(grey, int)
                                else None)
    same_backbone(ref, {"arch": theirs.get("arch"), "width": theirs.get("width"), "depth": theirs.get("depth"),
                        "channels": (meta.get("preprocessing") or {}).get("channels")},
                  {"arch": cfg.arch, "width": cfg.width, "depth": cfg.depth if cfg.arch == "resnet" else None,
                   "channels": channels})
