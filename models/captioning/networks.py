"""The captioning network (torch): a classification backbone as the image encoder, and a Show, Attend
and Tell decoder (Xu et al. 2015): an LSTM that, at every word, attends softly over the encoder's
spatial feature map.

    encode(image [N, C, H, W]) -> features [N, P, D], keys [N, P, A], h0, c0 [N, hidden]
    step(token [N], features, keys, h, c) -> logits [N, V], h, c, alpha [N, P]

The LSTM cell is written out (two linears, four gates) rather than nn.LSTMCell, so the decoder-step
graph exports to plain ONNX MatMul/Sigmoid/Tanh and ONNX Runtime reproduces it to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.classification.networks import LeNet, ResNet


class Encoder(nn.Module):
    """The backbone of models.classification.networks (same parameter names, under `backbone.`), cut
    before its pooling: LeNet's second conv block or ResNet's last stage, P = (H/4) * (W/4) positions."""

    def __init__(self, arch: str, channels: int, size: tuple[int, int], width: int, depth: int, grid: int = 0):
        super().__init__()
        self.arch = arch
        # average pooling of the map down to about grid x grid positions (0: none): attention cost is per position
        self.pool = max(1, min(size) // 4 // grid) if grid else 1
        if arch == "resnet":
            self.backbone = ResNet(channels, 1, width, depth)
            del self.backbone.head
            self.dim = 4 * width
        else:
            self.backbone = LeNet(channels, 1, (4, 4), width)
            del self.backbone.fc1, self.backbone.fc2
            self.dim = 2 * width
        with torch.no_grad():  # the map's size (odd sides round differently in LeNet's pools and ResNet's strides)
            self.positions = int(self.forward(torch.zeros(1, channels, *size)).flatten(2).shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, D, H/4/pool, W/4/pool]
        b = self.backbone
        if self.arch == "resnet":
            x = b.blocks(b.stem(x))
        else:
            x = F.max_pool2d(F.relu(b.conv1(x)), 2)
            x = F.max_pool2d(F.relu(b.conv2(x)), 2)
        return F.avg_pool2d(x, self.pool) if self.pool > 1 else x


class Captioner(nn.Module):
    def __init__(self, arch: str, channels: int, size: tuple[int, int], width: int, depth: int, vocab: int,
                 embed_dim: int = 64, hidden: int = 256, attention_dim: int = 128, dropout: float = 0.3,
                 grid: int = 0):
        super().__init__()
        self.encoder = Encoder(arch, channels, size, width, depth, grid)
        d = self.encoder.dim
        # where each position is: attention is over content, and "on the left" needs to know where it looked
        self.position = nn.Parameter(0.1 * torch.randn(self.encoder.positions, d))
        self.norm = nn.LayerNorm(d)  # unit-scale features, whatever the backbone's scale: the image speaks up early
        self.init_h = nn.Linear(d, hidden)
        self.init_c = nn.Linear(d, hidden)
        self.key = nn.Linear(d, attention_dim)
        self.query = nn.Linear(hidden, attention_dim, bias=False)
        self.score = nn.Linear(attention_dim, 1)
        self.gate = nn.Linear(hidden, d)
        self.embed = nn.Embedding(vocab, embed_dim)
        self.x2gates = nn.Linear(embed_dim + d, 4 * hidden)
        self.h2gates = nn.Linear(hidden, 4 * hidden, bias=False)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab)
        with torch.no_grad():  # forget gate bias 1: the cell keeps its state early in training
            self.x2gates.bias[hidden:2 * hidden].fill_(1.0)

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        fmap = self.encoder(image)  # [N, D, h, w]
        features = self.norm(fmap.flatten(2).transpose(1, 2)) + self.position  # [N, P, D]
        keys = self.key(features)  # [N, P, A]
        mean = features.mean(1)  # [N, D]
        return features, keys, torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))

    def step(self, token: torch.Tensor, features: torch.Tensor, keys: torch.Tensor, h: torch.Tensor,
             c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        e = self.embed(token)  # [N, E]
        att = self.score(torch.tanh(keys + self.query(h).unsqueeze(1))).squeeze(-1)  # [N, P]
        alpha = torch.softmax(att, dim=-1)
        context = torch.bmm(alpha.unsqueeze(1), features).squeeze(1)  # [N, D]
        context = torch.sigmoid(self.gate(h)) * context
        gates = self.x2gates(torch.cat([e, context], dim=-1)) + self.h2gates(h)  # [N, 4H]
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return self.out(self.drop(h)), h, c, alpha

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: tokens [N, T] (BOS first) -> logits [N, T, V] of each next token, alphas [N, T, P]."""
        features, keys, h, c = self.encode(image)
        logits, alphas = [], []
        for t in range(tokens.shape[1]):
            out, h, c, alpha = self.step(tokens[:, t], features, keys, h, c)
            logits.append(out)
            alphas.append(alpha)
        return torch.stack(logits, 1), torch.stack(alphas, 1)


class EncoderGraph(nn.Module):
    """What model.onnx computes: image -> features, keys (static), past_h, past_c (the initial cache)."""

    def __init__(self, model: Captioner):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        return self.model.encode(image)


BANNED = (0, 1, 3)  # PAD, BOS, UNK (models.common.text): never written; EOS ends a caption


def decoding_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log-softmax over the words a caption may hold: PAD, BOS and UNK get a log-probability of about -1e9
    (finite, so the search's arithmetic stays finite). Training's loss uses the plain logits."""
    ban = torch.zeros(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    ban[list(BANNED)] = -1e9
    return torch.log_softmax(logits + ban, dim=-1)


class DecoderStepGraph(nn.Module):
    """What decoder.onnx computes: token, features, keys, past_h, past_c -> log_probs, present_h, present_c."""

    def __init__(self, model: Captioner):
        super().__init__()
        self.model = model

    def forward(self, token, features, keys, past_h, past_c):
        logits, h, c, _ = self.model.step(token, features, keys, past_h, past_c)
        return decoding_log_probs(logits), h, c


def load_encoder(model: Captioner, state: dict[str, torch.Tensor]) -> dict[str, int]:
    """init_from: the encoder's backbone from a classification state dict (LeNet/ResNet keys; its head and
    LeNet's fc1 are not used) or a captioning one (`encoder.backbone.` keys; then the decoder too where every
    tensor fits). Every backbone tensor must be there with the same shape."""
    if isinstance(state.get("model"), dict):  # a whole checkpoint
        state = state["model"]
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    captioning = any(k.startswith("encoder.backbone.") for k in state)
    own = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    for key, mine in own.items():
        if not key.startswith("encoder.backbone."):
            continue
        theirs = state.get(key if captioning else key.removeprefix("encoder.backbone."))
        if theirs is None:
            raise ValueError(f"the weights have no tensor {key.removeprefix('encoder.backbone.')!r} that this "
                             f"{model.encoder.arch} encoder needs (they hold {len(state)} tensors, e.g. "
                             f"{sorted(state)[:3]}); were they trained with the same arch, width and depth?")
        if tuple(theirs.shape) != tuple(mine.shape):
            raise ValueError(f"tensor {key.removeprefix('encoder.backbone.')!r} has shape {list(theirs.shape)} "
                             f"in the weights but {list(mine.shape)} here; use the same arch, width, depth and "
                             "channels as the model the weights come from")
        loaded[key] = theirs
    decoder = 0
    if captioning and all(k in state and tuple(state[k].shape) == tuple(v.shape) for k, v in own.items()):
        loaded = {k: state[k] for k in own}
        decoder = 1
    model.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in loaded.items()}})
    return {"init_tensors": len(loaded), "init_decoder_loaded": decoder}


def freeze_encoder(model: Captioner) -> None:
    for p in model.encoder.parameters():
        p.requires_grad_(False)
