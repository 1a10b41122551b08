"""Small ``nn.Module`` wrappers, one per exported job: flat tensors in, flat tensors out.

ONNX graphs take and return flat tensor lists, while rnnkit models take state tuples and
return dicts. Each wrapper adapts one job of one model *without* touching the model's own
``forward`` (icefall monkey-patched its models for export; it rotted). Each declares its
``input_names``/``output_names`` (from ``names``) and the dynamic axes of every tensor.

``wrappers_for(model)`` returns ``{job: wrapper}`` for any rnnkit model kind.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.core.models.state_layout import state_roles
from rnnkit.edge import names as N

B, T, S, W = N.BATCH, N.TIME, N.SRC_TIME, N.WORD_LEN


class JobWrapper(nn.Module):
    """Base: ``input_names``, ``output_names`` and ``axes`` ({name: {dim: axis name}})."""

    job: str = ""
    input_names: list[str]
    output_names: list[str]
    axes: dict[str, dict[int, str]]
    # A graph whose time axis cannot be dynamic (the model loops over time in Python) is
    # exported for this many steps; None: dynamic.
    fixed_time: int | None = None

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.axes = {}

    @property
    def state_roles(self) -> tuple[str, ...]:
        if hasattr(self.model, "state_names"):  # seq2seq (input feeding), a Transformer's cache
            return tuple(self.model.state_names())
        return state_roles(self.model.config.cell)

    def example_inputs(self, batch: int, time: int) -> tuple[Tensor, ...]:
        """Inputs to trace the export with (values only need to be valid)."""
        raise NotImplementedError

    def _tokens(self, batch: int, time: int, vocab: int | None = None) -> Tensor:
        return torch.randint(0, vocab or self.model.config.vocab_size, (batch, time))

    def _state(self, batch: int) -> tuple[Tensor, ...]:
        return tuple(torch.randn_like(s) for s in self.model.init_state(batch))

    @staticmethod
    def _lengths(batch: int, time: int) -> Tensor:
        return torch.full((batch,), time, dtype=torch.long)

    def _state_io(self) -> tuple[list[str], list[str]]:
        ins, outs = N.state_io(self.state_roles)
        for name in ins + outs:
            self.axes[name] = {1: B}
        return ins, outs


class TokenStep(JobWrapper):
    """LM / one-to-many decoder step: tokens (B, T), *state -> logits (B, T, V), *next_state."""

    job = N.JOB_STEP

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.axes = {N.TOKENS: {0: B, 1: T}, N.LOGITS: {0: B, 1: T}}
        s_in, s_out = self._state_io()
        self.input_names, self.output_names = [N.TOKENS, *s_in], [N.LOGITS, *s_out]

    def forward(self, tokens: Tensor, *state: Tensor):
        logits, next_state = self.model(tokens, tuple(state))
        return (logits, *next_state)

    def example_inputs(self, batch, time):
        return (self._tokens(batch, time), *self._state(batch))


class FeatureStep(JobWrapper):
    """Forecaster step: features (B, T, F), *state -> predictions (B, T, O), *next_state."""

    job = N.JOB_STEP

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.axes = {N.FEATURES: {0: B, 1: T}, N.PREDICTIONS: {0: B, 1: T}}
        s_in, s_out = self._state_io()
        self.input_names, self.output_names = [N.FEATURES, *s_in], [N.PREDICTIONS, *s_out]

    def forward(self, features: Tensor, *state: Tensor):
        pred, next_state = self.model(features, tuple(state))
        return (pred, *next_state)

    def example_inputs(self, batch, time):
        return (torch.randn(batch, time, self.model.config.input_size), *self._state(batch))


def _head_names(model: nn.Module) -> list[str]:
    """The classifier's outputs in a fixed order: logits (if a class head), score (if a regression head)."""
    out = []
    if model.cls_head is not None:
        out.append(N.LOGITS)
    if model.reg_head is not None:
        out.append(N.SCORE)
    return out


class ClassifyWhole(JobWrapper):
    """Whole sequence: tokens (B, T), lengths (B,) -> logits (B, C) and/or score (B, R)."""

    job = N.JOB_CLASSIFY

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.heads = _head_names(model)
        self.input_names, self.output_names = [N.TOKENS, N.LENGTHS], list(self.heads)
        self.axes = {N.TOKENS: {0: B, 1: T}, N.LENGTHS: {0: B}, **{h: {0: B} for h in self.heads}}

    def forward(self, tokens: Tensor, lengths: Tensor):
        out, _ = self.model(tokens, lengths)
        return tuple(out[h] for h in self.heads)

    def example_inputs(self, batch, time):
        return self._tokens(batch, time), self._lengths(batch, time)


class ClassifyRunningStep(JobWrapper):
    """Unidirectional running score: tokens (B, T), *state -> heads after each token (B, T, .), *next_state.

    ``SequenceClassifier.running_step``: feed the state back and the score trajectory continues
    where it stopped.
    """

    job = N.JOB_RUNNING

    def __init__(self, model: nn.Module):
        super().__init__(model)
        if model.config.bidirectional:
            raise ValueError("a bidirectional classifier has no step graph; use ClassifyRunningPrefix")
        self.heads = _head_names(model)
        self.axes = {N.TOKENS: {0: B, 1: T}, **{h: {0: B, 1: T} for h in self.heads}}
        s_in, s_out = self._state_io()
        self.input_names, self.output_names = [N.TOKENS, *s_in], [*self.heads, *s_out]

    def forward(self, tokens: Tensor, *state: Tensor):
        heads, next_state = self.model.running_step(tokens, tuple(state))
        return (*(heads[h] for h in self.heads), *next_state)

    def example_inputs(self, batch, time):
        return (self._tokens(batch, time), *self._state(batch))


class ClassifyRunningPrefix(JobWrapper):
    """Bidirectional running score: tokens (B, T) -> heads of every prefix (B, T, .).

    Each prefix is re-read as its own sequence (``SequenceClassifier.running``): the
    backward direction of a prefix depends on where it ends, so no state can carry it.
    """

    job = N.JOB_RUNNING

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.heads = _head_names(model)
        self.input_names, self.output_names = [N.TOKENS], list(self.heads)
        self.axes = {N.TOKENS: {0: B, 1: T}, **{h: {0: B, 1: T} for h in self.heads}}

    def forward(self, tokens: Tensor):
        out = self.model.running(tokens)
        return tuple(out[h] for h in self.heads)

    def example_inputs(self, batch, time):
        return (self._tokens(batch, time),)


class TagWhole(JobWrapper):
    """Tagger: tokens (B, T), lengths (B,) (, chars (B, T, W)) -> tag logits (B, T, K).

    ``lengths`` is an input only when the tagger is bidirectional (the usual case).
    """

    job = N.JOB_TAG

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.with_chars = model.config.char_vocab_size > 0
        # Only the backward direction reads lengths; a unidirectional tagger's graph has no such
        # input (the exporter drops unused inputs, and a fake use would be worse).
        self.with_lengths = model.config.bidirectional
        self.input_names = ([N.TOKENS] + ([N.LENGTHS] if self.with_lengths else [])
                            + ([N.CHARS] if self.with_chars else []))
        self.output_names = [N.LOGITS]
        self.axes = {N.TOKENS: {0: B, 1: T}, N.LOGITS: {0: B, 1: T}}
        if self.with_lengths:
            self.axes[N.LENGTHS] = {0: B}
        if self.with_chars:
            self.axes[N.CHARS] = {0: B, 1: T, 2: W}

    def forward(self, tokens: Tensor, *rest: Tensor):
        lengths = rest[0] if self.with_lengths else None
        chars = rest[-1] if self.with_chars else None
        logits, _ = self.model(tokens, lengths, chars)
        return logits

    def example_inputs(self, batch, time):
        ins = (self._tokens(batch, time),) + ((self._lengths(batch, time),) if self.with_lengths else ())
        if self.with_chars:
            ins += (torch.randint(0, self.model.config.char_vocab_size, (batch, time, 7)),)
        return ins


class StateFrom(JobWrapper):
    """One-to-many: cond (B, C) -> initial state h0 (, c0), named as the step graph's inputs."""

    job = N.JOB_STATE_FROM

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.input_names, self.output_names = [N.COND], N.state_io(self.state_roles)[0]
        self.axes = {N.COND: {0: B}, **{n: {1: B} for n in self.output_names}}

    def forward(self, cond: Tensor):
        return tuple(self.model.state_from(cond))

    def example_inputs(self, batch, time):
        return (torch.randn(batch, self.model.config.cond_size),)


class Seq2SeqEncoder(JobWrapper):
    """src (B, S), src_len (B,) -> memory (B, S, H'), src_mask (B, S) bool, h0 (, c0) (, feed0).

    The decoder's initial state is named as the decoder graph's state inputs.
    """

    job = N.JOB_ENCODER

    def __init__(self, model: nn.Module):
        super().__init__(model)
        s_in, _ = N.state_io(self.state_roles)
        self.input_names = [N.SRC, N.SRC_LEN]
        self.output_names = [N.MEMORY, N.SRC_MASK, *s_in]
        self.axes = {N.SRC: {0: B, 1: S}, N.SRC_LEN: {0: B}, N.MEMORY: {0: B, 1: S},
                     N.SRC_MASK: {0: B, 1: S}, **{n: {1: B} for n in s_in}}

    def forward(self, src: Tensor, src_len: Tensor):
        memory, src_mask, state = self.model.encode(src, src_len)
        return (memory, src_mask, *state)

    def example_inputs(self, batch, time):
        return self._tokens(batch, time, self.model.config.src_vocab_size), self._lengths(batch, time)


class Seq2SeqDecoderStep(JobWrapper):
    """prev (B, T), h0 (, c0) (, feed0), memory (B, S, H'), src_mask (B, S)
    -> logits (B, T, V), next state, attn (B, T, S).

    Luong attention without input feeding runs the decoder RNN over all T at once, so T is
    dynamic. Bahdanau and input feeding loop over time in Python; a trace would pin that loop's
    count, so their graph is a true one-token step (T fixed to 1).
    """

    job = N.JOB_DECODER

    def __init__(self, model: nn.Module):
        super().__init__(model)
        c = model.config
        self.fixed_time = None if (c.attention == "luong" and not c.input_feeding) else 1
        s_in, s_out = self._state_io()
        self.input_names = [N.PREV, *s_in, N.MEMORY, N.SRC_MASK]
        self.output_names = [N.LOGITS, *s_out, N.ATTN]
        timed = {0: B} if self.fixed_time else {0: B, 1: T}
        self.axes.update({N.PREV: dict(timed), N.MEMORY: {0: B, 1: S}, N.SRC_MASK: {0: B, 1: S},
                          N.LOGITS: dict(timed), N.ATTN: {**timed, 2: S}})

    def forward(self, prev: Tensor, *rest: Tensor):
        *state, memory, src_mask = rest
        logits, next_state, attn = self.model.decode_step(prev, tuple(state), memory, src_mask)
        return (logits, *next_state, attn)

    def example_inputs(self, batch, time):
        src_time = time + 2
        src = self._tokens(batch, src_time, self.model.config.src_vocab_size)
        memory, src_mask, state = self.model.encode(src, self._lengths(batch, src_time))
        state = tuple(torch.randn_like(s) for s in state)
        prev = self._tokens(batch, self.fixed_time or time, self.model.config.tgt_vocab_size)
        return (prev, *state, memory, src_mask)


def wrappers_for(model: nn.Module) -> dict[str, JobWrapper]:
    """``{job: wrapper}`` for every graph ``model``'s kind exports (see ``names.GRAPHS``)."""
    kind = getattr(model, "kind", None)
    if kind in ("lm", "transformer_lm"):  # the Transformer's state is its KV cache (roles k, v, len)
        return {N.JOB_STEP: TokenStep(model)}
    if kind == "classifier":
        running = ClassifyRunningPrefix(model) if model.config.bidirectional else ClassifyRunningStep(model)
        return {N.JOB_CLASSIFY: ClassifyWhole(model), N.JOB_RUNNING: running}
    if kind == "tagger":
        return {N.JOB_TAG: TagWhole(model)}
    if kind == "forecaster":
        return {N.JOB_STEP: FeatureStep(model)}
    if kind == "one_to_many":
        return {N.JOB_STATE_FROM: StateFrom(model), N.JOB_STEP: TokenStep(model)}
    if kind == "seq2seq":
        return {N.JOB_ENCODER: Seq2SeqEncoder(model), N.JOB_DECODER: Seq2SeqDecoderStep(model)}
    raise ValueError(f"cannot export model kind {kind!r}; exportable kinds: {', '.join(N.GRAPHS)}")
