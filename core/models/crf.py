"""The linear-chain CRF's training loss (Lafferty et al. 2001; Lample et al. 2016 on NER).

A tagger's per-token scores (emissions) are tied together by tag-to-tag transition scores, so the
model learns that I-PER follows B-PER or I-PER and never O. Training maximises the gold path's
score against all paths (the forward algorithm, in log space); decoding is Viterbi
(``rnnkit.edge.viterbi``, numpy: the same on the device).
"""

from __future__ import annotations

import torch
from torch import Tensor


def crf_nll(emissions: Tensor, tags: Tensor, mask: Tensor, transitions: Tensor, start: Tensor,
            end: Tensor) -> Tensor:
    """Summed negative log-likelihood of the gold tags. ``emissions`` (B, T, K); ``tags`` (B, T)
    (pads: any value); ``mask`` (B, T) bool, True on real tokens, each row starting True."""
    emissions = emissions.float()
    B, T, K = emissions.shape
    tags = tags.clamp(min=0, max=K - 1)
    maskf = mask.to(emissions.dtype)
    em_gold = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
    score = start[tags[:, 0]] + em_gold[:, 0]
    if T > 1:
        score = score + ((transitions[tags[:, :-1], tags[:, 1:]] + em_gold[:, 1:]) * maskf[:, 1:]).sum(1)
    last = tags.gather(1, (mask.long().sum(1) - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
    score = score + end[last]
    alpha = start.unsqueeze(0) + emissions[:, 0]  # (B, K)
    for t in range(1, T):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + transitions.unsqueeze(0), dim=1) + emissions[:, t]
        alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)
    log_z = torch.logsumexp(alpha + end.unsqueeze(0), dim=1)
    return (log_z - score).sum()
