"""Adaptive softmax (Grave et al. 2017, "Efficient softmax approximation for GPUs").

A word LM's output layer costs ``E x V`` multiply-adds per token: for a 2x200 LSTM on PTB's 10 k words
it is three quarters of the arithmetic of a training step. Word frequencies follow Zipf's law, so most
tokens are among the first few thousand ids. The adaptive softmax scores those (the *shortlist*) and one
entry per *cluster* of rarer words in a head; a token in cluster ``i`` is then scored inside its cluster
by a tail that first projects the hidden state down to ``E / div^(i+1)`` dimensions:

    log p(w) = log p_head(w)                                  (w in the shortlist)
    log p(w) = log p_head(cluster i) + log p_tail_i(w)        (w in cluster i)

Training only evaluates the tail of each token's own cluster (``loss``); evaluation, sampling and the
exported step graph compute every word's log-probability (``forward``) -- a normalised distribution, so
everything downstream that takes a softmax of "logits" is unchanged.

Ids must be frequency-ordered (rnnkit's word and subword tokenizers are): the cutoffs split ``0..V``.
With ``tie`` the shortlist's output vectors are the embedding's first rows (Press & Wolf 2017); the
cluster vectors and the tails are the head's own.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def check_cutoffs(cutoffs: Sequence[int], vocab_size: int) -> list[int]:
    cut = [int(c) for c in cutoffs]
    if not cut:
        raise ValueError("adaptive softmax needs at least one cutoff")
    if any(b <= a for a, b in zip(cut, cut[1:])) or cut[0] < 1 or cut[-1] >= vocab_size:
        raise ValueError(f"adaptive cutoffs must increase strictly inside (0, vocab_size={vocab_size}), got {cut}")
    return cut


class AdaptiveHead(nn.Module):
    """hidden (..., E) -> log-probabilities (..., V); ``loss(hidden, targets)`` is the mean NLL."""

    def __init__(self, in_features: int, vocab_size: int, cutoffs: Sequence[int], div: float = 4.0,
                 tied: Optional[nn.Embedding] = None):
        super().__init__()
        self.cutoffs = check_cutoffs(cutoffs, vocab_size)
        if div < 1:
            raise ValueError(f"adaptive div must be >= 1, got {div}")
        self.vocab_size, self.shortlist = vocab_size, self.cutoffs[0]
        bounds = self.cutoffs + [vocab_size]
        self.n_clusters = len(self.cutoffs)
        # a plain attribute, not a submodule: the embedding is the model's own and is saved once
        object.__setattr__(self, "tied", tied)
        if tied is None:
            self.short_weight = nn.Parameter(torch.empty(self.shortlist, in_features).uniform_(-0.1, 0.1))
        self.cluster_weight = nn.Parameter(torch.zeros(self.n_clusters, in_features))
        self.head_bias = nn.Parameter(torch.zeros(self.shortlist + self.n_clusters))
        self.tails = nn.ModuleList()
        for i in range(self.n_clusters):
            dim = max(1, int(in_features // (div ** (i + 1))))
            self.tails.append(nn.Sequential(nn.Linear(in_features, dim, bias=False),
                                            nn.Linear(dim, bounds[i + 1] - bounds[i])))
        self.bounds = bounds

    def _head_weight(self) -> Tensor:
        short = self.tied.weight[:self.shortlist] if self.tied is not None else self.short_weight
        return torch.cat([short, self.cluster_weight], dim=0)

    def _head_logprob(self, h: Tensor) -> Tensor:
        return F.log_softmax(F.linear(h, self._head_weight(), self.head_bias).float(), dim=-1)

    def forward(self, h: Tensor) -> Tensor:
        head = self._head_logprob(h)
        parts = [head[..., :self.shortlist]]
        for i, tail in enumerate(self.tails):
            parts.append(head[..., self.shortlist + i:self.shortlist + i + 1]
                         + F.log_softmax(tail(h).float(), dim=-1))
        return torch.cat(parts, dim=-1)  # float32 even under autocast: log-probabilities, not logits to round

    def loss(self, h: Tensor, targets: Tensor) -> Tensor:
        """Mean negative log-likelihood of ``targets`` (N,) given ``h`` (N, E); each tail runs only on
        the rows whose target falls in its cluster."""
        head = self._head_logprob(h)
        # the head scores a shortlist token itself and a rarer one by its cluster's slot
        cluster = torch.bucketize(targets, torch.tensor(self.cutoffs, device=targets.device), right=True)
        head_target = torch.where(cluster == 0, targets, self.shortlist + cluster - 1)
        nll = torch.zeros(targets.shape, dtype=head.dtype, device=h.device)
        for i, tail in enumerate(self.tails):
            lo = self.bounds[i]
            # run even on no rows: every parameter stays in the graph (DDP's reducer expects each one)
            rows = (cluster == i + 1).nonzero().squeeze(1)
            lp = F.log_softmax(tail(h.index_select(0, rows)).float(), dim=-1)
            nll = nll.index_add(0, rows, -lp.gather(1, (targets.index_select(0, rows) - lo).unsqueeze(1)).squeeze(1))
        nll = nll - head.gather(1, head_target.unsqueeze(1)).squeeze(1)
        return nll.mean()
