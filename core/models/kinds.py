"""rnnkit's models: one config dataclass and one ``(inputs, state) -> (outputs, state)`` each.

Shapes follow PyTorch's batch-first convention: tokens (B, T), features (B, T, F),
state a tuple of (L*D, B, H) tensors ((h, c) for LSTM, (h,) otherwise).

| kind          | seed's shape            | model                   |
|---------------|-------------------------|-------------------------|
| lm            | many-to-many (aligned)  | ``LanguageModel``       |
| classifier    | many-to-one             | ``SequenceClassifier``  |
| tagger        | many-to-many (aligned)  | ``Tagger``              |
| forecaster    | many-to-many (aligned)  | ``Forecaster``          |
| one_to_many   | one-to-many             | ``ConditionedGenerator``|
| seq2seq       | encoder-decoder         | ``rnnkit.core.models.seq2seq`` |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.core.models.adaptive import AdaptiveHead, check_cutoffs
from rnnkit.core.models.recurrent import RecurrentStack, State, check_cell, last_valid, state_size
from rnnkit.core.models.regularize import activation_penalty, embedding_dropout, linear_cross_entropy, locked_dropout


class RecurrentModel(nn.Module):
    """Base class: a config, a ``kind`` name and explicit state."""

    kind: ClassVar[str] = ""
    rnn: RecurrentStack

    def init_state(self, batch: int, device=None) -> State:
        return self.rnn.init_state(batch, device=device)

    def num_params(self) -> int:
        # Tied weights are one parameter; parameters() already de-duplicates them.
        return sum(p.numel() for p in self.parameters())


# --------------------------------------------------------------------------- language model
@dataclass
class LMConfig:
    vocab_size: int
    cell: str = "lstm"
    embed_size: int = 256
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.2
    tie_weights: bool = True
    pad_id: int = 0
    bos_id: int = -1
    eos_id: int = -1
    unk_id: int = -1
    # Training-only regularisation (AWD-LSTM, Merity et al. 2018; core/models/regularize.py). The defaults
    # are the plain model (old config.json files load unchanged); none of these change what the
    # model computes in eval mode, so evaluation and the exported graph are the same.
    dropout_input: float = -1.0    # dropout on the embeddings; < 0: `dropout`
    dropout_hidden: float = -1.0   # dropout between recurrent layers; < 0: `dropout`
    locked_dropout: bool = False   # input / between-layer / output dropout: one mask per sequence
    embed_dropout: float = 0.0     # drop whole word types from the embedding, one mask per batch
    weight_drop: float = 0.0       # DropConnect on the hidden-to-hidden weights, one mask per batch
    ar_alpha: float = 0.0          # + alpha * mean(dropped last-layer output ^ 2)
    tar_beta: float = 0.0          # + beta * mean((raw last-layer output_t - output_{t-1}) ^ 2)
    # Adaptive softmax (core/models/adaptive.py): [] is the full softmax; e.g. [2000, 6000] scores the
    # 2,000 most frequent ids and two clusters in the head. The model then outputs log-probabilities.
    adaptive_cutoffs: list = field(default_factory=list)
    adaptive_div: float = 4.0

    def __post_init__(self):
        check_cell(self.cell)
        if self.adaptive_cutoffs:
            check_cutoffs(self.adaptive_cutoffs, self.vocab_size)
            self.adaptive_cutoffs = [int(c) for c in self.adaptive_cutoffs]
        for name in ("dropout", "embed_dropout", "weight_drop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"LMConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("dropout_input", "dropout_hidden"):
            if getattr(self, name) != -1.0 and not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"LMConfig.{name} must be in [0, 1) or -1 (= dropout), got {getattr(self, name)}")
        for name in ("ar_alpha", "tar_beta"):
            if getattr(self, name) < 0:
                raise ValueError(f"LMConfig.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def p_input(self) -> float:
        return self.dropout if self.dropout_input < 0 else self.dropout_input

    @property
    def p_hidden(self) -> float:
        return self.dropout if self.dropout_hidden < 0 else self.dropout_hidden


class LanguageModel(RecurrentModel):
    """Next-token model: tokens (B, T), state -> logits (B, T, V), state.

    Used for char-level generation, word-level PTB and subword next-word suggestion.
    With ``tie_weights`` the output layer shares the embedding matrix (Press & Wolf 2017);
    when hidden != embed a small projection sits in between.

    ``model(tokens, state, targets=y)`` (training) returns ``(loss, state)`` instead: the mean
    cross-entropy against y (B, T), computed by ``linear_cross_entropy`` without a separate
    log-probability tensor, plus the AR / TAR penalties in training mode.

    With ``adaptive_cutoffs`` the output layer is an adaptive softmax and the "logits" are
    log-probabilities (the same softmax, so sampling and the edge runner need no change).
    """

    kind = "lm"

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed_size)
        self.drop = nn.Dropout(c.dropout)
        self.rnn = RecurrentStack(c.cell, c.embed_size, c.hidden_size, c.num_layers, c.p_hidden,
                                  weight_drop=c.weight_drop, locked_dropout=c.locked_dropout)
        self.proj = nn.Linear(c.hidden_size, c.embed_size) if c.tie_weights and c.hidden_size != c.embed_size else None
        out_size = c.embed_size if c.tie_weights else c.hidden_size
        if c.adaptive_cutoffs:
            self.head = AdaptiveHead(out_size, c.vocab_size, c.adaptive_cutoffs, c.adaptive_div,
                                     tied=self.embed if c.tie_weights else None)
        else:
            self.head = nn.Linear(out_size, c.vocab_size)
            if c.tie_weights:
                self.head.weight = self.embed.weight
            nn.init.zeros_(self.head.bias)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)

    def _dropout(self, x: Tensor, p: float) -> Tensor:
        if not self.training or p <= 0:
            return x
        return locked_dropout(x, p) if self.config.locked_dropout else F.dropout(x, p, training=True)

    def forward(self, tokens: Tensor, state: Optional[State] = None,
                targets: Optional[Tensor] = None) -> tuple[Tensor, State]:
        c = self.config
        x = embedding_dropout(self.embed, tokens, c.embed_dropout, self.training)
        x = self._dropout(x, c.p_input)
        raw, state = self.rnn(x, state)
        out = self._dropout(raw, c.dropout)
        h = self.proj(out) if self.proj is not None else out
        if targets is None:
            return self.head(h), state
        if c.adaptive_cutoffs:
            loss = self.head.loss(h.reshape(-1, h.shape[-1]), targets.reshape(-1))
        elif torch.is_autocast_enabled(h.device.type):  # bf16 / fp16: the plain composition, as before
            logits = self.head(h)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))
        else:
            loss = linear_cross_entropy(h.reshape(-1, h.shape[-1]), self.head.weight, self.head.bias,
                                        targets.reshape(-1))
        if self.training:
            penalty = activation_penalty(out, raw, c.ar_alpha, c.tar_beta)
            if penalty is not None:
                loss = loss + penalty
        return loss, state


# --------------------------------------------------------------------------- many-to-one
@dataclass
class ClassifierConfig:
    vocab_size: int
    num_classes: int = 2  # 0: no classification head
    num_targets: int = 0  # regression outputs; 0: no regression head
    bounded: bool = False  # squash the regression through tanh into [-1, 1] (sentiment score)
    cell: str = "lstm"
    embed_size: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.2
    bidirectional: bool = True
    pad_id: int = 0
    unk_id: int = -1

    def __post_init__(self):
        check_cell(self.cell)
        if self.num_classes <= 0 and self.num_targets <= 0:
            raise ValueError("a classifier needs num_classes > 0 or num_targets > 0")


class SequenceClassifier(RecurrentModel):
    """Many-to-one: tokens (B, T), lengths (B,) -> {"logits": (B, C), "score": (B, R)}, state.

    The summary of each sequence is the state at its last real token (forward direction)
    and at its first token (backward direction) -- never a pad's.
    """

    kind = "classifier"

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed_size, padding_idx=c.pad_id if c.pad_id >= 0 else None)
        self.drop = nn.Dropout(c.dropout)
        self.rnn = RecurrentStack(c.cell, c.embed_size, c.hidden_size, c.num_layers, c.dropout, c.bidirectional)
        feat = self.rnn.output_size
        self.cls_head = nn.Linear(feat, c.num_classes) if c.num_classes > 0 else None
        self.reg_head = nn.Linear(feat, c.num_targets) if c.num_targets > 0 else None

    def heads(self, features: Tensor) -> dict[str, Tensor]:
        """Apply the output heads to summary vectors (..., D*H)."""
        out: dict[str, Tensor] = {}
        if self.cls_head is not None:
            out["logits"] = self.cls_head(features)
        if self.reg_head is not None:
            score = self.reg_head(features)
            out["score"] = torch.tanh(score) if self.config.bounded else score
        return out

    def forward(self, tokens: Tensor, lengths: Optional[Tensor] = None,
                state: Optional[State] = None) -> tuple[dict[str, Tensor], State]:
        x = self.drop(self.embed(tokens))
        out, state = self.rnn(x, state, lengths)
        summary = last_valid(self.drop(out), lengths, self.rnn.num_directions)
        return self.heads(summary), state

    def running_step(self, tokens: Tensor, state: Optional[State] = None) -> tuple[dict[str, Tensor], State]:
        """Unidirectional only: the outputs after each token, resumable. tokens (B, T), state ->
        ({"logits": (B, T, C), "score": (B, T, R)}, state); feed the state back and the score
        trajectory continues where it stopped (the exported ``running`` step graph is this)."""
        if self.config.bidirectional:
            raise ValueError("a bidirectional classifier has no running step (a prefix's backward pass "
                             "depends on where it ends); use running()")
        out, state = self.rnn(self.embed(tokens), state)
        return self.heads(out), state

    def running(self, tokens: Tensor) -> dict[str, Tensor]:
        """The outputs after each token of one unpadded batch: tokens (B, T) -> (B, T, ...).

        Unidirectional: one pass of ``running_step``, the head on every position's output.
        Bidirectional: each prefix re-read as its own sequence, since the backward direction
        of a prefix depends on where it ends.
        """
        B, T = tokens.shape
        if not self.config.bidirectional:
            return self.running_step(tokens)[0]
        prefixes = tokens.unsqueeze(1).expand(B, T, T).reshape(B * T, T)
        lengths = torch.arange(1, T + 1, device=tokens.device).repeat(B)
        outs, _ = self.forward(prefixes, lengths)
        return {k: v.view(B, T, -1) for k, v in outs.items()}


# --------------------------------------------------------------------------- tagger
@dataclass
class TaggerConfig:
    vocab_size: int
    num_tags: int
    cell: str = "lstm"
    embed_size: int = 100
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.3
    bidirectional: bool = True
    char_vocab_size: int = 0  # > 0 adds a character CNN per word (shape and capitalisation cues)
    char_embed_size: int = 25
    char_filters: int = 50
    crf: bool = False  # a linear-chain CRF over the tags: transition scores, Viterbi decoding (core/models/crf.py)
    pad_id: int = 0
    unk_id: int = 1

    def __post_init__(self):
        check_cell(self.cell)


class Tagger(RecurrentModel):
    """Token tagger: tokens (B, T) [, chars (B, T, W)], lengths (B,) -> tag logits (B, T, K), state."""

    kind = "tagger"

    def __init__(self, config: TaggerConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed_size, padding_idx=c.pad_id)
        in_size = c.embed_size
        if c.char_vocab_size > 0:
            self.char_embed = nn.Embedding(c.char_vocab_size, c.char_embed_size, padding_idx=0)
            self.char_conv = nn.Conv1d(c.char_embed_size, c.char_filters, kernel_size=3, padding=1)
            in_size += c.char_filters
        self.drop = nn.Dropout(c.dropout)
        self.rnn = RecurrentStack(c.cell, in_size, c.hidden_size, c.num_layers, c.dropout, c.bidirectional)
        self.head = nn.Linear(self.rnn.output_size, c.num_tags)
        if c.crf:  # not used by forward (the graph exports emissions); the loss and Viterbi read them
            self.crf_transitions = nn.Parameter(torch.zeros(c.num_tags, c.num_tags))
            self.crf_start = nn.Parameter(torch.zeros(c.num_tags))
            self.crf_end = nn.Parameter(torch.zeros(c.num_tags))

    def crf_tables(self):
        """(transitions, start, end) as float64 numpy arrays, or None without a CRF."""
        if not self.config.crf:
            return None
        return tuple(p.detach().double().cpu().numpy() for p in (self.crf_transitions, self.crf_start, self.crf_end))

    def _char_features(self, chars: Tensor) -> Tensor:
        B, T, W = chars.shape
        e = self.char_embed(chars.reshape(B * T, W)).transpose(1, 2)  # (B*T, E, W)
        f = torch.relu(self.char_conv(e))  # (B*T, F, W)
        # Pad characters (id 0) must not enter the max, or a word's features would depend on
        # how far the batch pads it; relu >= 0, so a 0 there never beats a real character.
        f = f.masked_fill((chars.reshape(B * T, 1, W) == 0), 0.0).max(dim=2).values  # max over characters
        return f.view(B, T, -1)

    def forward(self, tokens: Tensor, lengths: Optional[Tensor] = None, chars: Optional[Tensor] = None,
                state: Optional[State] = None) -> tuple[Tensor, State]:
        x = self.embed(tokens)
        if self.config.char_vocab_size > 0:
            if chars is None:
                raise ValueError("this tagger was built with character features: pass chars (B, T, W)")
            x = torch.cat([x, self._char_features(chars)], dim=-1)
        out, state = self.rnn(self.drop(x), state, lengths)
        return self.head(self.drop(out)), state


# --------------------------------------------------------------------------- time series
@dataclass
class ForecasterConfig:
    input_size: int = 1
    output_size: int = 1
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0

    def __post_init__(self):
        check_cell(self.cell)


class Forecaster(RecurrentModel):
    """Many-to-many regression: features (B, T, F), state -> predictions (B, T, O), state.

    Causal, so it runs one step at a time on a device: the prediction at t is for t+1.
    """

    kind = "forecaster"

    def __init__(self, config: ForecasterConfig):
        super().__init__()
        self.config = c = config
        self.rnn = RecurrentStack(c.cell, c.input_size, c.hidden_size, c.num_layers, c.dropout)
        self.head = nn.Linear(c.hidden_size, c.output_size)

    def forward(self, x: Tensor, state: Optional[State] = None) -> tuple[Tensor, State]:
        out, state = self.rnn(x, state)
        return self.head(out), state


# --------------------------------------------------------------------------- one-to-many
@dataclass
class OneToManyConfig:
    cond_size: int
    vocab_size: int
    cell: str = "gru"
    embed_size: int = 32
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = 0

    def __post_init__(self):
        check_cell(self.cell)


class ConditionedGenerator(RecurrentModel):
    """One-to-many: a vector (B, C) sets the initial state, then tokens are generated.

    ``state_from(cond)`` gives the state; ``forward(tokens, state)`` is the decoder step,
    the same shape as the language model's, so the same samplers drive it.
    """

    kind = "one_to_many"

    def __init__(self, config: OneToManyConfig):
        super().__init__()
        self.config = c = config
        n_state = state_size(c.cell)
        self.bridge = nn.Linear(c.cond_size, n_state * c.num_layers * c.hidden_size)
        self.embed = nn.Embedding(c.vocab_size, c.embed_size)
        self.rnn = RecurrentStack(c.cell, c.embed_size, c.hidden_size, c.num_layers, c.dropout)
        self.head = nn.Linear(c.hidden_size, c.vocab_size)

    def state_from(self, cond: Tensor) -> State:
        c = self.config
        s = torch.tanh(self.bridge(cond))  # (B, S*L*H)
        s = s.view(cond.shape[0], -1, c.num_layers, c.hidden_size).permute(1, 2, 0, 3)
        return tuple(t.contiguous() for t in s)  # each (L, B, H)

    def forward(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        out, state = self.rnn(self.embed(tokens), state)
        return self.head(out), state
