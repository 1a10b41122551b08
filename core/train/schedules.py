"""Optimizers and learning-rate schedules, with state that is plain JSON.

``LRSchedule`` is ours rather than ``torch.optim.lr_scheduler`` so that its state is a few
numbers (no lambdas, no pickled objects) and the learning rate is a pure function of
(step, plateau scale): resuming sets it back exactly.

- constant: base lr (after an optional linear warm-up).
- cosine:   linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr_ratio * lr``
            at ``total_steps``; or, given ``progress`` in [0, 1] (a budget's clock, e.g. CPU seconds
            spent / budget), at progress 1.
- plateau:  constant (after warm-up), multiplied by ``factor`` each time the validation
            metric has not improved for ``patience`` evaluations in a row.
"""

from __future__ import annotations

import math
import torch

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine", "plateau")


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Parameter groups: weight decay on weight matrices only; embeddings (and the output layer
    tied to them), biases and norm gains are not decayed (the usual practice: decaying a
    vector of gains or an embedding row the batch never saw only pulls it toward zero)."""
    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    decay, keep = [], []
    for p in model.parameters():
        if p.requires_grad:
            (keep if p.ndim < 2 or id(p) in no_decay else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def build_optimizer(params, name: str, lr: float, weight_decay: float = 0.0,
                    momentum: float = 0.0) -> torch.optim.Optimizer:
    """One of sgd | adam | adamw | rmsprop; ``momentum`` applies to sgd and rmsprop.

    ``params``: a module (weight decay by ``decay_groups``), or parameters / groups as torch
    takes them. For sgd, adam and rmsprop weight decay is coupled L2 (``lr * weight_decay`` of
    every weight removed each step): a value set for AdamW is refused where it would erase the
    weights (sgd at lr 20 with 0.01 removes 20 % a step)."""
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if name in ("sgd", "adam", "rmsprop") and lr * weight_decay > 0.01:
        raise ValueError(f"optimizer {name} with lr {lr:g} and weight_decay {weight_decay:g} removes "
                         f"{min(lr * weight_decay, 1):.0%} of every weight each step (coupled L2; AdamW's "
                         f"decay is decoupled): set train.weight_decay=0 or below {0.01 / lr:.2g}")
    if isinstance(params, torch.nn.Module):
        params = decay_groups(params, weight_decay)
    else:
        params = [p for p in params if isinstance(p, dict) or p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")


class LRSchedule:
    """Sets ``optimizer``'s lr before every step; ``observe(metric)`` after each evaluation."""

    def __init__(self, optimizer: torch.optim.Optimizer, kind: str, base_lr: float, warmup_steps: int = 0,
                 total_steps: int | None = None, min_lr_ratio: float = 0.0, mode: str = "min",
                 factor: float = 0.5, patience: int = 2, clock: bool = False):
        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r}; allowed: {', '.join(SCHEDULES)}")
        if kind == "cosine" and not total_steps and not clock:
            raise ValueError("schedule cosine needs max_steps (or max_epochs with a known epoch length, "
                             "or max_cpu_seconds)")
        if mode not in ("min", "max"):
            raise ValueError(f"metric_mode must be 'min' or 'max', got {mode!r}")
        self.optimizer, self.kind, self.base_lr = optimizer, kind, base_lr
        self.clock = clock  # cosine progress comes from apply(step, progress), not from the step
        self.warmup_steps, self.total_steps, self.min_lr_ratio = max(0, warmup_steps), total_steps, min_lr_ratio
        self.mode, self.factor, self.patience = mode, factor, patience
        self.scale = 1.0  # plateau reductions so far
        self.best: float | None = None
        self.bad_evals = 0

    def lr_at(self, step: int, progress: float | None = None) -> float:
        """Learning rate for optimizer step ``step`` (0-based); ``progress``: the clock's fraction of
        the budget spent, for a cosine schedule built with ``clock=True``."""
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.kind == "cosine":
            if self.clock:
                progress = min(1.0, max(0.0, progress or 0.0))
            else:
                span = max(1, self.total_steps - self.warmup_steps)
                progress = min(1.0, (step - self.warmup_steps) / span)
            ratio = self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
            return self.base_lr * ratio
        return self.base_lr * self.scale

    def apply(self, step: int, progress: float | None = None) -> float:
        lr = self.lr_at(step, progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def observe(self, metric: float) -> None:
        """Plateau bookkeeping after an evaluation (other schedules ignore it)."""
        if self.kind != "plateau" or not math.isfinite(metric):
            return
        better = self.best is None or (metric < self.best if self.mode == "min" else metric > self.best)
        if better:
            self.best, self.bad_evals = metric, 0
            return
        self.bad_evals += 1
        if self.bad_evals >= self.patience:
            self.scale *= self.factor
            self.bad_evals = 0

    def state_dict(self) -> dict:
        return {"kind": self.kind, "scale": self.scale, "best": self.best, "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best, self.bad_evals = float(state["scale"]), state["best"], int(state["bad_evals"])
