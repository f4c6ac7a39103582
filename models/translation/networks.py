"""Encoder-decoder networks of the translation family (torch).

Both networks share one face, which training, evaluation, the ONNX export and the parity check use:

    forward(src, tgt_in) -> logits [B, T, V]            teacher forcing (training, validation loss)
    encode(src) -> (static, cache)                       dicts of tensors, batch first
    step(token, step, static, cache) -> (log_probs, cache)   one decoder step with the cache (what ONNX runs)
    full(prefix, static, cache0) -> log_probs [B, V]     the same step recomputed from the whole prefix
                                                         (cache0: the cache encode gave)

src is int64 [B, S] right-padded with PAD (0) and ends with EOS; tgt_in starts with BOS.
Static entries (named as the ONNX graphs name them): src_bias [B, S] (0 for tokens, -1e9 for padding)
and the per-layer cross-attention keys/values (transformer) or the memory (lstm). Cache entries start
with past_: the transformer's self-attention keys/values [B, L, H, T, hd] (start empty, T = 0); the
LSTM's state [B, L, H] (the encoder gives its first value).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PAD = 0
NEG = -1e9


def sinusoids(n: int, d: int) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return pe


def src_bias(src: torch.Tensor) -> torch.Tensor:
    return (src == PAD).to(torch.float32) * NEG  # [B, S]


class Attention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.drop = dropout

    def split(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D] -> [B, H, T, hd]
        return x.view(x.shape[0], x.shape[1], self.h, self.hd).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """q [B, H, Tq, hd], k/v [B, H, Tk, hd], bias broadcastable to [B, H, Tq, Tk] -> [B, Tq, D]."""
        w = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.hd))
        if bias is not None:
            w = w + bias
        w = F.dropout(torch.softmax(w, dim=-1), self.drop, self.training)
        out = torch.matmul(w, v)  # [B, H, Tq, hd]
        return self.o(out.transpose(1, 2).reshape(q.shape[0], q.shape[2], self.h * self.hd))


class EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.att = Attention(d, heads, dropout)
        self.ff = nn.Sequential(nn.Linear(d, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        a = self.att
        x = x + self.drop(a.attend(a.split(a.q(h)), a.split(a.k(h)), a.split(a.v(h)), bias))
        return x + self.drop(self.ff(self.ln2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_att, self.cross = Attention(d, heads, dropout), Attention(d, heads, dropout)
        self.ff = nn.Sequential(nn.Linear(d, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, k, v, self_bias, ck, cv, cbias):
        """x [B, T, D]; k/v the self-attention keys/values [B, H, Tk, hd] (this step's included);
        ck/cv cross keys/values [B, H, S, hd]; cbias [B, 1, 1, S]."""
        h = self.ln1(x)
        x = x + self.drop(self.self_att.attend(self.self_att.split(self.self_att.q(h)), k, v, self_bias))
        h = self.ln2(x)
        x = x + self.drop(self.cross.attend(self.cross.split(self.cross.q(h)), ck, cv, cbias))
        return x + self.drop(self.ff(self.ln3(x)))

    def self_kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.ln1(x)
        return self.self_att.split(self.self_att.k(h)), self.self_att.split(self.self_att.v(h))


class Transformer(nn.Module):
    def __init__(self, src_vocab: int, tgt_vocab: int, d: int = 256, layers: int = 3, heads: int = 4,
                 ffn: int = 1024, dropout: float = 0.1, max_positions: int = 512, tie: bool = True):
        super().__init__()
        self.d, self.heads, self.n_layers = d, heads, layers
        self.src_emb, self.tgt_emb = nn.Embedding(src_vocab, d), nn.Embedding(tgt_vocab, d)
        for e in (self.src_emb, self.tgt_emb):
            nn.init.normal_(e.weight, 0, d ** -0.5)
        self.register_buffer("pe", sinusoids(max_positions, d), persistent=False)
        self.enc = nn.ModuleList(EncoderLayer(d, heads, ffn, dropout) for _ in range(layers))
        self.dec = nn.ModuleList(DecoderLayer(d, heads, ffn, dropout) for _ in range(layers))
        self.enc_ln, self.dec_ln = nn.LayerNorm(d), nn.LayerNorm(d)
        self.out = nn.Linear(d, tgt_vocab, bias=False)
        if tie:
            self.out.weight = self.tgt_emb.weight
        self.drop = nn.Dropout(dropout)
        self.scale = math.sqrt(d)

    # -- encoder ----------------------------------------------------------------------------------
    def memory(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bias = src_bias(src)  # [B, S]
        x = self.drop(self.src_emb(src) * self.scale + self.pe[: src.shape[1]])
        b4 = bias[:, None, None, :]
        for layer in self.enc:
            x = layer(x, b4)
        return self.enc_ln(x), bias

    def encode(self, src: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        mem, bias = self.memory(src)
        ks = [layer.cross.split(layer.cross.k(mem)) for layer in self.dec]  # each [B, H, S, hd]
        vs = [layer.cross.split(layer.cross.v(mem)) for layer in self.dec]
        return {"src_bias": bias, "cross_k": torch.stack(ks, 1), "cross_v": torch.stack(vs, 1)}, {}

    def empty_cache(self, batch: int, device=None) -> dict[str, torch.Tensor]:
        z = torch.zeros(batch, self.n_layers, self.heads, 0, self.d // self.heads, device=device)
        return {"past_k": z, "past_v": z.clone()}

    # -- decoder ----------------------------------------------------------------------------------
    def _decode(self, x: torch.Tensor, static: dict[str, torch.Tensor], past_k=None, past_v=None):
        """x [B, T, D] (embedded, positioned); past_* [B, L, H, Tp, hd] or None -> (hidden, keys, values)."""
        t = x.shape[1]
        cbias = static["src_bias"][:, None, None, :]
        self_bias = None
        if t > 1:  # causal mask within the new positions (all cached positions are visible)
            tp = 0 if past_k is None else past_k.shape[3]
            causal = torch.ones(t, tp + t, dtype=torch.bool, device=x.device).tril(tp)
            self_bias = torch.zeros(t, tp + t, device=x.device).masked_fill(~causal, NEG)
        keys, values = [], []
        for i, layer in enumerate(self.dec):
            k, v = layer.self_kv(x)
            if past_k is not None:
                k, v = torch.cat([past_k[:, i], k], 2), torch.cat([past_v[:, i], v], 2)
            keys.append(k)
            values.append(v)
            x = layer(x, k, v, self_bias, static["cross_k"][:, i], static["cross_v"][:, i], cbias)
        return self.dec_ln(x), keys, values

    def embed_tgt(self, tokens: torch.Tensor, start: torch.Tensor | int = 0) -> torch.Tensor:
        if isinstance(start, torch.Tensor):
            pos = self.pe.index_select(0, start)  # [1, D]: the step's position
        else:
            pos = self.pe[start: start + tokens.shape[1]]
        return self.drop(self.tgt_emb(tokens) * self.scale + pos)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        static, _ = self.encode(src)
        h, _, _ = self._decode(self.embed_tgt(tgt_in), static)
        return self.out(h)

    def step(self, token: torch.Tensor, step: torch.Tensor, static: dict[str, torch.Tensor],
             cache: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self.embed_tgt(token[:, None], step)  # [B, 1, D]
        h, keys, values = self._decode(x, static, cache["past_k"], cache["past_v"])
        log_probs = torch.log_softmax(self.out(h[:, -1]).float(), dim=-1)
        return log_probs, {"past_k": torch.stack(keys, 1), "past_v": torch.stack(values, 1)}

    def full(self, prefix: torch.Tensor, static: dict[str, torch.Tensor], cache0=None) -> torch.Tensor:
        h, _, _ = self._decode(self.embed_tgt(prefix), static)
        return torch.log_softmax(self.out(h[:, -1]).float(), dim=-1)


class LSTMSeq2Seq(nn.Module):
    """A bidirectional LSTM encoder (each sequence reversed within its own length, so right padding
    changes nothing) and an LSTM decoder with Luong (general) attention over the memory."""

    def __init__(self, src_vocab: int, tgt_vocab: int, d: int = 256, layers: int = 2, dropout: float = 0.1,
                 tie: bool = True):
        super().__init__()
        self.d, self.n_layers = d, layers
        self.src_emb, self.tgt_emb = nn.Embedding(src_vocab, d), nn.Embedding(tgt_vocab, d)
        self.fwd = nn.ModuleList(nn.LSTM(d if i == 0 else 2 * d, d, batch_first=True) for i in range(layers))
        self.bwd = nn.ModuleList(nn.LSTM(d if i == 0 else 2 * d, d, batch_first=True) for i in range(layers))
        self.mem = nn.Linear(2 * d, d)
        self.init_h, self.init_c = nn.Linear(d, layers * d), nn.Linear(d, layers * d)
        self.dec = nn.LSTM(d, d, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.att = nn.Linear(d, d, bias=False)
        self.combine = nn.Linear(2 * d, d)
        self.out = nn.Linear(d, tgt_vocab, bias=False)
        if tie:
            self.out.weight = self.tgt_emb.weight
        self.drop = nn.Dropout(dropout)

    def encode(self, src: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        b, s = src.shape
        mask = (src != PAD)
        lengths = mask.sum(1, keepdim=True)  # [B, 1]
        t = torch.arange(s, device=src.device)[None, :].expand(b, s)
        rev = torch.where(t < lengths, lengths - 1 - t, t)  # reverses each row within its length
        x = self.drop(self.src_emb(src))
        for fwd, bwd in zip(self.fwd, self.bwd, strict=True):
            f, _ = fwd(x)
            xr = torch.gather(x, 1, rev[:, :, None].expand(-1, -1, x.shape[2]))
            r, _ = bwd(xr)
            r = torch.gather(r, 1, rev[:, :, None].expand(-1, -1, r.shape[2]))
            x = self.drop(torch.cat([f, r], -1))
        memory = torch.tanh(self.mem(x))  # [B, S, D]
        m = mask[:, :, None].to(memory.dtype)
        mean = (memory * m).sum(1) / m.sum(1).clamp(min=1.0)  # [B, D]
        h0 = torch.tanh(self.init_h(mean)).view(b, self.n_layers, self.d)
        c0 = self.init_c(mean).view(b, self.n_layers, self.d)
        return {"memory": memory, "src_bias": src_bias(src)}, {"past_h": h0, "past_c": c0}

    def _attend(self, o: torch.Tensor, static: dict[str, torch.Tensor]) -> torch.Tensor:
        """o [B, T, D] decoder outputs -> logits [B, T, V]."""
        mem = static["memory"]
        w = torch.matmul(self.att(o), mem.transpose(1, 2)) + static["src_bias"][:, None, :]  # [B, T, S]
        ctx = torch.matmul(torch.softmax(w, -1), mem)
        h = self.drop(torch.tanh(self.combine(torch.cat([o, ctx], -1))))
        return self.out(h)

    def _run(self, tokens: torch.Tensor, static, cache):
        state = (cache["past_h"].transpose(0, 1).contiguous(), cache["past_c"].transpose(0, 1).contiguous())
        o, (h, c) = self.dec(self.drop(self.tgt_emb(tokens)), state)
        return self._attend(o, static), {"past_h": h.transpose(0, 1), "past_c": c.transpose(0, 1)}

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        static, cache = self.encode(src)
        return self._run(tgt_in, static, cache)[0]

    def step(self, token, step, static, cache):
        logits, cache = self._run(token[:, None], static, cache)
        return torch.log_softmax(logits[:, -1].float(), -1), cache

    def full(self, prefix: torch.Tensor, static: dict[str, torch.Tensor], cache0: dict[str, torch.Tensor]):
        return torch.log_softmax(self._run(prefix, static, cache0)[0][:, -1].float(), -1)
