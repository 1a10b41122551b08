"""Greedy and beam-search decoding for encoder-decoder models.

Works with any model that has ``encode(src, src_len) -> (memory, src_mask, state)``,
``decode_step(prev (B, 1), state, memory, src_mask) -> (logits, state, attn)`` and a config
with ``bos_id``, ``eos_id``, ``pad_id`` (``rnnkit.core.models.seq2seq.Seq2Seq``). Every state tensor
has the batch on dim 1, so reordering beams is one ``index_select`` per tensor.
Call these through ``Seq2Seq.greedy`` / ``Seq2Seq.beam_search`` (eval mode, no grad).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Decoded(NamedTuple):
    """Output of greedy / beam search.

    tokens (B, T) long: the generated ids (no BOS), EOS included, pads after it.
    attn (B, T, S): each generated token's attention over the source (zeros after EOS).
    logprob (B,): sum of the log-probabilities of the tokens up to and including EOS.
    """

    tokens: Tensor
    attn: Tensor
    logprob: Tensor


def log_probs(logits: Tensor) -> Tensor:
    """log_softmax in at least float32 (half-precision logits lose the small differences)."""
    return torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)


def _check_max_len(max_len: int) -> None:
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")


def greedy_search(model, src: Tensor, src_len: Tensor, max_len: int) -> Decoded:
    """Take the argmax token at each step until every sequence has emitted EOS or max_len."""
    _check_max_len(max_len)
    c = model.config
    memory, src_mask, state = model.encode(src, src_len)
    B = src.shape[0]
    prev = torch.full((B, 1), c.bos_id, dtype=torch.long, device=src.device)
    finished = torch.zeros(B, dtype=torch.bool, device=src.device)
    logprob = torch.zeros(B, dtype=torch.float64, device=src.device)
    tokens, attns = [], []
    for _ in range(max_len):
        logits, state, attn = model.decode_step(prev, state, memory, src_mask)
        lp = log_probs(logits[:, -1])  # (B, V)
        nxt = lp.argmax(dim=-1).masked_fill(finished, c.pad_id)
        logprob += lp.gather(1, nxt.unsqueeze(1)).squeeze(1).masked_fill(finished, 0.0).double()
        tokens.append(nxt)
        attns.append(attn[:, -1] * (~finished).unsqueeze(1))
        finished = finished | (nxt == c.eos_id)
        prev = nxt.unsqueeze(1)
        if bool(finished.all()):
            break
    return Decoded(torch.stack(tokens, dim=1), torch.stack(attns, dim=1), logprob.to(memory.dtype))


def length_normalised(scores: Tensor, lengths: Tensor, alpha: float) -> Tensor:
    """GNMT's length penalty: scores / ((5 + len) / 6) ** alpha; alpha 0 leaves them raw."""
    if alpha == 0:
        return scores
    return scores / ((5.0 + lengths.to(scores.dtype)) / 6.0) ** alpha


def beam_search(model, src: Tensor, src_len: Tensor, beam: int, max_len: int,
                length_penalty: float = 0.0) -> Decoded:
    """Keep the ``beam`` best prefixes per source (by summed log-prob); return the best one.

    A finished hypothesis (it emitted EOS) stays in the beam with its score frozen: its only
    continuation is a pad at cost 0, so it competes with the unfinished ones until the end.
    """
    _check_max_len(max_len)
    c = model.config
    B, K = src.shape[0], beam
    device = src.device
    memory, src_mask, state = model.encode(src, src_len)
    # Rows b*K .. b*K+K-1 are the beams of source b.
    memory = memory.repeat_interleave(K, dim=0)
    src_mask = src_mask.repeat_interleave(K, dim=0)
    state = tuple(s.repeat_interleave(K, dim=1) for s in state)
    scores = torch.full((B, K), float("-inf"), dtype=torch.float64, device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first one at step 1
    finished = torch.zeros(B * K, dtype=torch.bool, device=device)
    lengths = torch.zeros(B * K, dtype=torch.long, device=device)
    tokens = torch.zeros(B * K, 0, dtype=torch.long, device=device)
    attns = memory.new_zeros(B * K, 0, memory.shape[1])
    prev = torch.full((B * K, 1), c.bos_id, dtype=torch.long, device=device)
    base = (torch.arange(B, device=device) * K).unsqueeze(1)  # (B, 1)
    for _ in range(max_len):
        logits, state, attn = model.decode_step(prev, state, memory, src_mask)
        lp = log_probs(logits[:, -1]).double()  # (B*K, V)
        V = lp.shape[-1]
        pad_only = torch.full_like(lp, float("-inf"))
        pad_only[:, c.pad_id] = 0.0
        lp = torch.where(finished.unsqueeze(1), pad_only, lp)
        cand = (scores.view(B * K, 1) + lp).view(B, K * V)
        scores, idx = cand.topk(K, dim=1)  # (B, K), sorted best first
        rows = (base + torch.div(idx, V, rounding_mode="floor")).view(-1)  # parent beam of each survivor
        tok = (idx % V).view(-1)
        state = tuple(s.index_select(1, rows) for s in state)
        was_finished = finished.index_select(0, rows)
        tokens = torch.cat([tokens.index_select(0, rows), tok.unsqueeze(1)], dim=1)
        step_attn = attn[:, -1].index_select(0, rows) * (~was_finished).unsqueeze(1)
        attns = torch.cat([attns.index_select(0, rows), step_attn.unsqueeze(1)], dim=1)
        lengths = lengths.index_select(0, rows) + (~was_finished).long()
        finished = was_finished | (tok == c.eos_id)
        prev = tok.unsqueeze(1)
        if bool(finished.all()):
            break
    ranked = length_normalised(scores, lengths.view(B, K), length_penalty)
    best = (torch.arange(B, device=device) * K + ranked.argmax(dim=1))  # (B,)
    return Decoded(tokens.index_select(0, best), attns.index_select(0, best),
                   scores.view(-1).index_select(0, best).to(memory.dtype))
