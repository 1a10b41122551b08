"""Sampling from next-token distributions: temperature, top-k, top-p, seeded.

Every generator in rnnkit (language models, the one-to-many decoder, seq2seq's decoder)
steps through its model's ``forward(tokens, state)``; only the choice of the next token
lives here.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch
from torch import Tensor


def filter_logits(logits: Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Return logits (B, V) with temperature applied and the excluded tokens at -inf."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use greedy for 0), got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    logits = logits.float() / temperature
    if top_k and top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the tokens ranked above it already cover top_p; the first always stays.
        drop = (torch.cumsum(probs, dim=-1) - probs) > top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                generator: Optional[torch.Generator] = None, greedy: bool = False) -> Tensor:
    """Pick one token per row of logits (B, V) -> (B,)."""
    if greedy:
        return logits.argmax(dim=-1)
    probs = torch.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(model, prompt: Sequence[int], max_new_tokens: int, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, seed: Optional[int] = None, greedy: bool = False,
             stop_ids: Sequence[int] = (), state=None) -> Iterator[int]:
    """Yield new token ids one at a time from a ``(tokens, state) -> (logits, state)`` model.

    The prompt is read in one call (its state carried), then each new token is one step.
    """
    if len(prompt) == 0:
        raise ValueError("generate needs a non-empty prompt (e.g. a BOS or newline token)")
    device = next(model.parameters()).device
    gen = torch.Generator(device=device)
    if seed is not None:
        gen.manual_seed(seed)
    else:
        gen.seed()
    was_training = model.training
    model.eval()
    try:
        tokens = torch.tensor([list(prompt)], dtype=torch.long, device=device)
        logits, state = model(tokens, state)
        for _ in range(max_new_tokens):
            nxt = sample_next(logits[:, -1], temperature, top_k, top_p, gen, greedy)
            tok = int(nxt.item())
            yield tok
            if tok in stop_ids:
                return
            logits, state = model(nxt.view(1, 1), state)
    finally:
        model.train(was_training)
