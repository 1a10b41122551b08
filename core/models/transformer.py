"""A small causal Transformer language model whose state is its key/value cache.

GPT-style decoder at nanoGPT's size and clarity (``model.py``: pre-LayerNorm blocks, causal
self-attention, 4x GELU MLP, tied input/output embedding, N(0, 0.02) init with the residual
projections scaled by 1/sqrt(2L)), with rotary positions (RoPE) instead of learned ones, and rnnkit's
step contract ``forward(tokens (B, T), state) -> (logits (B, T, V), state)``.

State, a tuple like every rnnkit model's (batch on dim 1)::

    k   (L, B, N, C)  keys of the last N = ``window`` positions, per layer, oldest first (not rotated)
    v   (L, B, N, C)  their values
    len (1, B, 1)     tokens read so far (float32, exact to 2^24); min(len, N) slots hold a position

Why a fixed window rather than a growing past: every state tensor keeps one shape for the whole
session, so the ONNX step graph, the edge runner, int8 quantisation and the typing session's
"save the state, restore it on Backspace" treat it exactly like an LSTM's (h, c); memory and
per-token cost are bounded by N. A growing past is exact for any length but changes shape every
token and grows without bound on a device. The price: a token attends to the last N positions only
(sliding-window attention, as Mistral's). Inside the window nothing is lost: while fewer than N
tokens have been read, step-by-step equals one whole-sequence call of a plain causal Transformer.

Rotary positions make the window slide for free: attention depends only on the distance between a
query and a key, so a key rotated once at its absolute position (and cached rotated) stays valid as
the window moves; learned absolute positions would have no embedding for position N + 1 and would
force a re-read of the window every token. Angles are float32 products position x frequency: after
about a million tokens without a reset they drift by ~0.06 rad at the highest frequency.

Training (``state`` None, T <= N) is one fused ``scaled_dot_product_attention(is_causal=True)`` call;
with a state (carried windows, sampling, the exported graph) the new tokens attend over
[cache, new] under a (B, 1, T, N + T) mask: causal, within the window, and only filled slots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.core.models.regularize import linear_cross_entropy

State = tuple[Tensor, ...]
STATE_NAMES = ("k", "v", "len")


@dataclass
class TransformerConfig:
    vocab_size: int
    num_layers: int = 4
    num_heads: int = 4
    hidden_size: int = 128   # model width C (nanoGPT's n_embd)
    window: int = 256        # N: positions the KV cache holds (and attention reads)
    dropout: float = 0.0
    bias: bool = False       # biases in the linear layers and LayerNorms (nanoGPT's train.py default: off)
    rope_base: float = 10000.0
    pad_id: int = 0
    bos_id: int = -1
    eos_id: int = -1
    unk_id: int = -1
    # What the exporter writes as the graph's "cell" (not a field: never in config.json).
    cell: ClassVar[str] = "transformer"

    def __post_init__(self):
        if min(self.vocab_size, self.num_layers, self.num_heads, self.hidden_size, self.window) < 1:
            raise ValueError("vocab_size, num_layers, num_heads, hidden_size and window must be >= 1")
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 2:
            raise ValueError(f"hidden_size {self.hidden_size} must split into {self.num_heads} heads of an even "
                             "size (rotary positions rotate pairs of channels)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def rope_tables(slots: Tensor, head_size: int, base: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """cos, sin (..., head_size / 2) of the rotation at each position (...); angles in float32 at least
    (float64 for a float64 model, so its parity tests see its own rounding, not float32's)."""
    work = torch.float64 if dtype == torch.float64 else torch.float32
    inv_freq = base ** (-torch.arange(0, head_size, 2, device=slots.device, dtype=work) / head_size)
    angles = slots.to(work).unsqueeze(-1) * inv_freq
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary embedding of x (B, nh, S, hs) with tables broadcastable to (B, nh, S, hs / 2): each pair
    (x_2i, x_2i+1) turned by angle_i."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class CausalSelfAttention(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.c = c
        self.qkv = nn.Linear(c.hidden_size, 3 * c.hidden_size, bias=c.bias)
        self.proj = nn.Linear(c.hidden_size, c.hidden_size, bias=c.bias)
        self.drop = nn.Dropout(c.dropout)

    def _heads(self, x: Tensor) -> Tensor:  # (B, S, C) -> (B, nh, S, hs)
        B, S, C = x.shape
        return x.view(B, S, self.c.num_heads, C // self.c.num_heads).transpose(1, 2)

    def forward(self, x: Tensor, positions: Tensor, k_cache: Optional[Tensor], v_cache: Optional[Tensor],
                mask: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, T, C), positions (B, T), caches (B, N, C) or None -> y (B, T, C), keys (rotated) and
        values (B, N + T, C) of [cache, new] (or (B, T, C) without a cache)."""
        B, T, C = x.shape
        hs = self.c.hidden_size // self.c.num_heads
        q, k, v = self.qkv(x).split(self.c.hidden_size, dim=2)  # a Python int: no traced split size
        cos, sin = rope_tables(positions, hs, self.c.rope_base, x.dtype)  # (B, T, hs / 2)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, T, hs / 2): every head alike
        qh = rotate(self._heads(q), cos, sin)
        k = rotate(self._heads(k), cos, sin).transpose(1, 2).reshape(B, T, C)  # cached rotated
        if k_cache is not None:
            k, v = torch.cat([k_cache, k], 1), torch.cat([v_cache, v], 1)
        kh, vh = self._heads(k), self._heads(v)
        p = self.c.dropout if self.training else 0.0
        if mask is None:
            y = F.scaled_dot_product_attention(qh, kh, vh, dropout_p=p, is_causal=True)
        elif p == 0.0:  # written out: the exported SDPA scales every cached key; this scales T x (N + T) scores
            att = (qh @ kh.transpose(-1, -2)) * (1.0 / math.sqrt(hs))
            y = att.masked_fill(~mask, float("-inf")).softmax(-1) @ vh
        else:
            y = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.drop(self.proj(y)), k, v


class Block(nn.Module):
    """Pre-LayerNorm block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(c.hidden_size, bias=c.bias)
        self.attn = CausalSelfAttention(c)
        self.ln2 = nn.LayerNorm(c.hidden_size, bias=c.bias)
        self.fc = nn.Linear(c.hidden_size, 4 * c.hidden_size, bias=c.bias)
        self.out = nn.Linear(4 * c.hidden_size, c.hidden_size, bias=c.bias)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x, positions, k_cache, v_cache, mask):
        a, k, v = self.attn(self.ln1(x), positions, k_cache, v_cache, mask)
        x = x + a
        x = x + self.drop(self.out(F.gelu(self.fc(self.ln2(x)))))
        return x, k, v


class TransformerLM(nn.Module):
    """Next-token Transformer: tokens (B, T), state -> logits (B, T, V), state (see the module doc).

    ``model(tokens, state, targets=y)`` returns ``(mean cross-entropy, state)`` as ``LanguageModel``
    does, so the LM task, sampling and evaluation drive both kinds the same way.
    """

    kind = "transformer_lm"

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.hidden_size)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.num_layers))
        self.ln_f = nn.LayerNorm(c.hidden_size, bias=c.bias)
        self.head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied (nanoGPT's wte / lm_head)
        for name, p in self.named_parameters():
            if p.dim() == 2:  # nanoGPT: N(0, 0.02), residual projections scaled by 1 / sqrt(2 L)
                std = 0.02 / math.sqrt(2 * c.num_layers) if name.endswith(("attn.proj.weight", "out.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    @staticmethod
    def state_names() -> tuple[str, ...]:
        return STATE_NAMES

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        """Empty cache: k, v zeros (L, B, N, C) and len zeros (1, B, 1)."""
        p = next(self.parameters())
        device = device if device is not None else p.device
        dtype = dtype if dtype is not None else p.dtype
        c = self.config
        kv = (c.num_layers, batch, c.window, c.hidden_size)
        return (torch.zeros(kv, device=device, dtype=dtype), torch.zeros(kv, device=device, dtype=dtype),
                torch.zeros((1, batch, 1), device=device, dtype=dtype))

    def _mask(self, seen: Tensor, T: int) -> Tensor:
        """(B, 1, T, N + T) bool: query i (slot N + i) reads slot j iff j <= N + i (causal), j > i (the
        last N positions only) and slot j holds a real position (j >= N - min(seen, N))."""
        N = self.config.window
        j = torch.arange(N + T, device=seen.device).view(1, 1, 1, N + T)
        i = torch.arange(T, device=seen.device).view(1, 1, T, 1)
        start = (N - torch.clamp(seen, max=float(N)).reshape(-1, 1, 1, 1)).to(j.dtype)  # (B, 1, 1, 1)
        return (j <= N + i) & (j > i) & (j >= start)

    def forward(self, tokens: Tensor, state: Optional[State] = None,
                targets: Optional[Tensor] = None) -> tuple[Tensor, State]:
        c, (B, T) = self.config, tokens.shape
        N = c.window
        x = self.drop(self.embed(tokens))
        fresh = state is None and T <= N  # plain causal attention, no cache to read
        if state is None and not fresh:
            state = self.init_state(B, tokens.device, x.dtype)
        seen = None if fresh else state[2][0, :, 0]  # (B,) tokens read before these
        mask = None if fresh else self._mask(seen, T)
        offsets = torch.arange(T, device=tokens.device, dtype=x.dtype).unsqueeze(0)  # (1, T)
        positions = offsets.expand(B, T) if fresh else seen.unsqueeze(1) + offsets  # (B, T) absolute
        ks, vs = [], []
        for layer, block in enumerate(self.blocks):
            kc = None if fresh else state[0][layer]
            vc = None if fresh else state[1][layer]
            x, k, v = block(x, positions, kc, vc, mask)
            ks.append(k)
            vs.append(v)
        h = self.ln_f(x)
        if fresh:  # right-align the T new positions in an N-slot cache
            pad = x.new_zeros(c.num_layers, B, N - T, c.hidden_size)
            k_all, v_all = torch.cat([pad, torch.stack(ks)], 2), torch.cat([pad, torch.stack(vs)], 2)
            seen_after = x.new_full((1, B, 1), float(T))
        else:
            k_all, v_all = torch.stack(ks)[:, :, T:], torch.stack(vs)[:, :, T:]  # the last N slots
            seen_after = state[2] + T
        new_state = (k_all, v_all, seen_after)
        if targets is None:
            return self.head(h), new_state
        if torch.is_autocast_enabled(h.device.type):
            loss = F.cross_entropy(self.head(h).reshape(-1, c.vocab_size).float(), targets.reshape(-1))
        else:
            loss = linear_cross_entropy(h.reshape(-1, c.hidden_size), self.head.weight, None, targets.reshape(-1))
        return loss, new_state
