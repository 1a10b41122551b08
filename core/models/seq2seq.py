"""Encoder-decoder with attention: ``kind = "seq2seq"``.

    src (B, S) --encode--> memory (B, S, D*H), src_mask (B, S), decoder state
    prev (B, T) --decode_step(state, memory, src_mask)--> logits (B, T, V), state, attn (B, T, S)

``decode_step`` is the one step function: training (teacher forcing), greedy, beam search
and the exported ONNX decoder all call it. Its decoder state is a tuple of (L, B, H)
tensors ((h, c) for LSTM, (h,) otherwise), plus, with ``input_feeding``, the previous
attentional vector as one more (1, B, H) tensor -- so a state is always "tensors with the
batch on dim 1", which beam search reorders and ONNX carries without special cases.

Attention (``attention=``):
- ``"luong"`` (Luong et al. 2015, "general" score): the decoder RNN steps first, then its
  output h_t queries the memory, score(h_t, m_s) = h_t^T W_a m_s.
- ``"bahdanau"`` (Bahdanau et al. 2015, additive score): the previous top hidden state
  queries the memory first, score = v^T tanh(W_q s_{t-1} + W_k m_s), and the context is
  fed into the RNN with the embedding.
Both then form the attentional vector h~_t = tanh(W_c [c_t; h_t]) that the output layer reads.

Padding: source pads are masked out of the attention (weight exactly 0) and the bridge
reads each layer's output at the last real token (forward direction) and at position 0
(backward direction), so a padded batch gives the same outputs as each sequence alone.
For LSTM the decoder's initial c is bridged from those same hidden states: the encoder's
own c at the last real token is not observable from a fused run over a padded batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn

from rnnkit.core.models.kinds import RecurrentModel
from rnnkit.core.models.recurrent import RecurrentStack, State, check_cell, last_valid, state_size
from rnnkit.core.models.seq2seq_search import Decoded, beam_search, greedy_search, log_probs

ATTENTIONS = ("luong", "bahdanau")


@dataclass
class Seq2SeqConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    cell: str = "lstm"
    embed_size: int = 128
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.2
    bidirectional: bool = True  # the encoder's; the decoder is always left-to-right
    attention: str = "luong"
    input_feeding: bool = False  # Luong: feed h~_{t-1} into the next step (adds one state tensor)
    shared_vocab: bool = False  # one joint vocabulary: source and target share one embedding
    tie_output: bool = False  # output layer shares the target embedding matrix
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    unk_id: int = 3

    def __post_init__(self):
        check_cell(self.cell)
        if self.attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {self.attention!r}; allowed: {', '.join(ATTENTIONS)}")
        if self.shared_vocab and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(f"shared_vocab needs src_vocab_size == tgt_vocab_size, got "
                             f"{self.src_vocab_size} and {self.tgt_vocab_size}")
        if self.input_feeding and self.attention != "luong":
            raise ValueError("input_feeding is a Luong-attention option (Bahdanau already feeds the context)")
        for name in ("pad_id", "bos_id", "eos_id"):
            if not 0 <= getattr(self, name) < self.tgt_vocab_size:
                raise ValueError(f"{name}={getattr(self, name)} is outside the target vocabulary "
                                 f"(size {self.tgt_vocab_size})")


class Attention(nn.Module):
    """Scores queries (B, T, H) against memory (B, S, M) -> weights (B, T, S), context (B, T, M).

    ``keys(memory)`` is the query-independent part; compute it once per sequence, not per step.
    """

    def __init__(self, kind: str, query_size: int, memory_size: int):
        super().__init__()
        self.kind = kind
        if kind == "luong":
            # h^T W_a m == (W_a^T h)^T m: transform the query, not every memory position.
            self.query = nn.Linear(query_size, memory_size, bias=False)
        else:
            self.query = nn.Linear(query_size, query_size)
            self.key = nn.Linear(memory_size, query_size, bias=False)
            self.v = nn.Linear(query_size, 1, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        """memory (B, S, M) -> keys (B, S, M) for luong, (B, S, A) for bahdanau."""
        return memory if self.kind == "luong" else self.key(memory)

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor]:
        if self.kind == "luong":
            scores = torch.bmm(self.query(query), keys.transpose(1, 2))  # (B, T, S)
        else:
            q = self.query(query).unsqueeze(2)  # (B, T, 1, A)
            scores = self.v(torch.tanh(q + keys.unsqueeze(1))).squeeze(-1)  # (B, T, S)
        # A finite minimum rather than -inf: exp() gives exactly 0 and never NaN.
        scores = scores.masked_fill(~src_mask.unsqueeze(1), torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        return weights, torch.bmm(weights, memory)


class Seq2Seq(RecurrentModel):
    """Bidirectional (optional) encoder, attention, left-to-right decoder; see module docstring."""

    kind = "seq2seq"

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = c = config
        D = 2 if c.bidirectional else 1
        H, E, L = c.hidden_size, c.embed_size, c.num_layers
        self.n_state = state_size(c.cell)
        self.src_embed = nn.Embedding(c.src_vocab_size, E)
        self.tgt_embed = self.src_embed if c.shared_vocab else nn.Embedding(c.tgt_vocab_size, E)
        self.drop = nn.Dropout(c.dropout)
        # One single-layer stack per encoder layer: the bridge needs every layer's outputs
        # to read its final state at the last real token (the fused state runs over pads).
        self.encoder = nn.ModuleList(
            RecurrentStack(c.cell, E if layer == 0 else D * H, H, 1, 0.0, c.bidirectional) for layer in range(L))
        # Each encoder layer's (fwd, bwd) final hidden -> that decoder layer's initial h (and c).
        self.bridge = nn.ModuleList(nn.Linear(D * H, self.n_state * H) for _ in range(L))
        extra = D * H if c.attention == "bahdanau" else (H if c.input_feeding else 0)
        self.rnn = RecurrentStack(c.cell, E + extra, H, L, c.dropout)  # the decoder
        self.attention = Attention(c.attention, H, D * H)
        self.combine = nn.Linear(D * H + H, H)
        self.proj = nn.Linear(H, E) if c.tie_output and H != E else None
        self.head = nn.Linear(E if c.tie_output else H, c.tgt_vocab_size)
        if c.tie_output:
            self.head.weight = self.tgt_embed.weight
        nn.init.uniform_(self.src_embed.weight, -0.1, 0.1)
        if not c.shared_vocab:
            nn.init.uniform_(self.tgt_embed.weight, -0.1, 0.1)

    # ----------------------------------------------------------------------- state
    def state_names(self) -> tuple[str, ...]:
        """Names of the decoder state tensors, in order: ("h", "c"[, "feed"])."""
        return ("h", "c")[:self.n_state] + (("feed",) if self.config.input_feeding else ())

    def init_state(self, batch: int, device=None) -> State:
        """A zero decoder state (encode() gives the real one)."""
        state = self.rnn.init_state(batch, device=device)
        if self.config.input_feeding:
            state = state + (state[0].new_zeros(1, batch, self.config.hidden_size),)
        return state

    # ----------------------------------------------------------------------- encoder
    def encode(self, src: Tensor, src_len: Tensor) -> tuple[Tensor, Tensor, State]:
        """src (B, S) long, src_len (B,) -> memory (B, S, D*H), src_mask (B, S) bool, state.

        src_mask is True at real tokens. state: tuple of (L, B, H) (+ (1, B, H) feed).
        """
        B, S = src.shape
        src_len = src_len.to(src.device).clamp(min=1)  # an empty source would attend to nothing
        src_mask = torch.arange(S, device=src.device).unsqueeze(0) < src_len.unsqueeze(1)
        out = self.drop(self.src_embed(src))
        finals = []
        for layer, (rnn, bridge) in enumerate(zip(self.encoder, self.bridge)):
            if layer > 0:
                out = self.drop(out)
            out, _ = rnn(out, None, src_len)
            summary = last_valid(out, src_len, rnn.num_directions)  # (B, D*H), pads never read
            finals.append(torch.tanh(bridge(summary)).view(B, self.n_state, -1))
        s = torch.stack(finals, dim=0)  # (L, B, n_state, H)
        state = tuple(s[:, :, i].contiguous() for i in range(self.n_state))
        if self.config.input_feeding:
            state = state + (s.new_zeros(1, B, self.config.hidden_size),)
        return out, src_mask, state

    # ----------------------------------------------------------------------- decoder
    def _output(self, h: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder outputs h (B, T, H), context (B, T, D*H) -> logits (B, T, V), attentional vector (B, T, H)."""
        feat = torch.tanh(self.combine(torch.cat([context, h], dim=-1)))
        out = self.drop(feat)
        if self.proj is not None:
            out = self.proj(out)
        return self.head(out), feat

    def decode_step(self, prev: Tensor, state: State, memory: Tensor,
                    src_mask: Tensor) -> tuple[Tensor, State, Tensor]:
        """prev (B, T) long, state -> logits (B, T, V), state, attn (B, T, S).

        T == 1 is one generation step. For T > 1 (teacher forcing) the result equals T
        calls with T == 1; Luong attention without input feeding runs the RNN over all T
        in one fused call, the other variants loop over time (a fixed, shape-given count).
        """
        c = self.config
        emb = self.drop(self.tgt_embed(prev))  # (B, T, E)
        keys = self.attention.keys(memory)
        if c.attention == "luong" and not c.input_feeding:
            h, rnn_state = self.rnn(emb, state)
            attn, context = self.attention(h, keys, memory, src_mask)
            logits, _ = self._output(h, context)
            return logits, rnn_state, attn
        rnn_state, feed = (state[:-1], state[-1]) if c.input_feeding else (state, None)
        logits_t, attn_t = [], []
        for t in range(prev.shape[1]):
            x = emb[:, t:t + 1]
            if c.attention == "bahdanau":
                query = rnn_state[0][-1].unsqueeze(1)  # previous top-layer hidden (B, 1, H)
                attn, context = self.attention(query, keys, memory, src_mask)
                h, rnn_state = self.rnn(torch.cat([x, context], dim=-1), rnn_state)
                logits, _ = self._output(h, context)
            else:  # luong with input feeding
                h, rnn_state = self.rnn(torch.cat([x, feed.transpose(0, 1)], dim=-1), rnn_state)
                attn, context = self.attention(h, keys, memory, src_mask)
                logits, feat = self._output(h, context)
                feed = feat.transpose(0, 1)  # (1, B, H)
            logits_t.append(logits)
            attn_t.append(attn)
        state = tuple(rnn_state) + ((feed,) if c.input_feeding else ())
        return torch.cat(logits_t, dim=1), state, torch.cat(attn_t, dim=1)

    def forward(self, src: Tensor, src_len: Tensor, tgt_in: Tensor) -> tuple[Tensor, State]:
        """Teacher forcing: tgt_in (B, T) starts with BOS -> logits (B, T, V), final state."""
        memory, src_mask, state = self.encode(src, src_len)
        logits, state, _ = self.decode_step(tgt_in, state, memory, src_mask)
        return logits, state

    # ----------------------------------------------------------------------- inference
    def _check_src(self, src: Tensor, src_len: Tensor) -> None:
        if src.dim() != 2 or src_len.shape != (src.shape[0],):
            raise ValueError(f"src must be (B, S) and src_len (B,), got {tuple(src.shape)} and {tuple(src_len.shape)}")
        if src_len.numel() and (int(src_len.min()) < 1 or int(src_len.max()) > src.shape[1]):
            raise ValueError(f"src_len must be in [1, {src.shape[1]}], got {src_len.tolist()}")
        if src.numel() and (int(src.min()) < 0 or int(src.max()) >= self.config.src_vocab_size):
            raise ValueError(f"source ids must be in [0, {self.config.src_vocab_size}), "
                             f"got min {int(src.min())} max {int(src.max())}")

    @contextmanager
    def _evaluating(self) -> Iterator[None]:
        # Decoding must not see dropout; restore the caller's mode afterwards.
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.train(was_training)

    def sequence_logprob(self, src: Tensor, src_len: Tensor, tokens: Tensor) -> Tensor:
        """Log-probability (B,) of ``tokens`` (B, T) as produced by greedy/beam: up to and including EOS."""
        c = self.config
        bos = torch.full_like(tokens[:, :1], c.bos_id)
        with self._evaluating():
            logits, _ = self.forward(src, src_len, torch.cat([bos, tokens[:, :-1]], dim=1))
        lp = log_probs(logits).gather(2, tokens.unsqueeze(2)).squeeze(2)
        # Count positions up to the first EOS; everything after it is padding.
        is_eos = (tokens == c.eos_id).long()
        after_eos = (torch.cumsum(is_eos, dim=1) - is_eos) > 0
        return lp.masked_fill(after_eos, 0.0).sum(dim=1)

    def greedy(self, src: Tensor, src_len: Tensor, max_len: int = 100) -> Decoded:
        """Argmax decoding: src (B, S), src_len (B,) -> Decoded(tokens (B, T), attn (B, T, S), logprob (B,))."""
        self._check_src(src, src_len)
        with self._evaluating():
            return greedy_search(self, src, src_len, max_len)

    def beam_search(self, src: Tensor, src_len: Tensor, beam: int = 4, max_len: int = 100,
                    length_penalty: float = 0.0) -> Decoded:
        """Beam search -> the best hypothesis per source, as ``Decoded``. ``length_penalty`` alpha
        ranks the final beams by logprob / ((5 + len) / 6) ** alpha (GNMT); 0 ranks by raw logprob."""
        self._check_src(src, src_len)
        if beam < 1:
            raise ValueError(f"beam must be >= 1, got {beam}")
        with self._evaluating():
            return beam_search(self, src, src_len, beam, max_len, length_penalty)
