"""Training-only regularisers of AWD-LSTM (Merity, Keskar & Socher 2018) and a fused output loss.

Every function here is the identity (or plain cross-entropy) outside training: the evaluated,
saved and exported model computes exactly what it did before (see ``LMConfig``).

- ``locked_dropout``: variational dropout, one mask per sequence (batch row x feature), the same
  at every time step (Gal & Ghahramani 2016), for the inputs, between layers and on the outputs.
- ``embedding_dropout``: drops whole word types (rows of the embedding matrix): every occurrence
  of a dropped word in the batch reads a zero vector; the rest are scaled by 1 / (1 - p).
- ``drop_connect``: DropConnect on a weight matrix (Wan et al. 2013); ``RecurrentStack`` applies
  it to the hidden-to-hidden weights once per forward call, so one mask holds for the whole
  sequence (batch) rather than a new one per time step.
- ``activation_penalty``: AR (alpha * mean of the squared dropped outputs) + TAR (beta * mean of
  the squared change of the raw outputs between neighbouring time steps), last layer only.
- ``linear_cross_entropy``: the output layer and the mean cross-entropy in one autograd node
  (the softmax computed in place in the logits' buffer, no log-probability tensor, no
  zero-filled gradient of it): same values as ``F.cross_entropy(F.linear(x, W, b), y)`` up to
  float rounding, fewer passes over the (tokens x vocab) logits.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_p(p: float, name: str) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {p}")


def locked_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """x (B, T, F) batch-first: one Bernoulli mask per (row, feature), constant over time."""
    if not training or p <= 0:
        return x
    _check_p(p, "locked dropout")
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p).div_(1 - p)
    return x * mask


def embedding_dropout(embed: nn.Embedding, tokens: Tensor, p: float, training: bool = True) -> Tensor:
    """``embed(tokens)`` with whole word types dropped (one mask over the vocabulary per call)."""
    x = embed(tokens)
    if not training or p <= 0:
        return x
    _check_p(p, "embedding dropout")
    keep = x.new_empty(embed.num_embeddings).bernoulli_(1 - p).div_(1 - p)
    return x * keep[tokens].unsqueeze(-1)


def drop_connect(weight: Tensor, p: float, training: bool = True) -> Tensor:
    """The weight with a fresh DropConnect mask (elementwise, scaled by 1 / (1 - p)); the parameter
    itself is never modified, so its gradient is the masked one."""
    if not training or p <= 0:
        return weight
    _check_p(p, "weight drop")
    return F.dropout(weight, p, training=True)


def activation_penalty(dropped: Tensor, raw: Tensor, alpha: float, beta: float) -> Optional[Tensor]:
    """AR + TAR on the last layer's outputs (B, T, H): ``alpha * mean(dropped^2) +
    beta * mean((raw[:, t] - raw[:, t-1])^2)``; None when both are off."""
    terms = []
    if alpha > 0:
        terms.append(alpha * dropped.pow(2).mean())
    if beta > 0 and raw.shape[1] > 1:
        terms.append(beta * (raw[:, 1:] - raw[:, :-1]).pow(2).mean())
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


class _LinearCrossEntropy(torch.autograd.Function):
    """mean_i [logsumexp(x_i W^T + b) - (x_i W^T + b)[y_i]]; backward reuses the exp'd logits in place."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor], target: Tensor) -> Tensor:
        logits = x @ weight.t()  # (N, V); addmm would first copy the broadcast bias into all of it
        if bias is not None:
            logits.add_(bias)
        picked = logits.gather(1, target.unsqueeze(1)).squeeze(1)
        top = logits.amax(dim=1, keepdim=True)
        probs = logits.sub_(top).exp_()  # in place: exp(logits - max), the softmax numerators
        total = probs.sum(dim=1)
        loss = (total.log() + top.squeeze(1) - picked).mean()
        ctx.save_for_backward(x, weight, probs, total, target)
        ctx.has_bias = bias is not None
        ctx.used = False
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor):
        if ctx.used:
            raise RuntimeError("linear_cross_entropy: backward through the same graph twice is not supported "
                               "(its buffers are reused in place)")
        ctx.used = True
        x, weight, g, total, target = ctx.saved_tensors
        n = g.shape[0]
        g.mul_((grad / n) / total.unsqueeze(1))  # softmax / n, one pass
        g[torch.arange(n, device=g.device), target] -= grad / n
        dx = g @ weight if ctx.needs_input_grad[0] else None
        dw = g.t() @ x if ctx.needs_input_grad[1] else None
        db = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db, None


def linear_cross_entropy(x: Tensor, weight: Tensor, bias: Optional[Tensor], target: Tensor) -> Tensor:
    """Mean cross-entropy of ``F.linear(x, weight, bias)`` against ``target``: x (N, E), weight (V, E),
    target (N,) int64. Under autocast (bf16 / fp16) it is the plain composition, as before."""
    if torch.is_autocast_enabled(x.device.type) or x.dtype != weight.dtype:
        return F.cross_entropy(F.linear(x, weight, bias).float(), target)
    if x.shape[0] == 0:
        return F.cross_entropy(F.linear(x, weight, bias), target)
    return _LinearCrossEntropy.apply(x, weight, bias, target)
