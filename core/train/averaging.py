"""Averaged weights for the trainer: an EMA, plain averaging (ASGD) from a step, or NT-ASGD.

NT-ASGD (Merity et al. 2018, AWD-LSTM): keep training as before until the validation metric has
not beaten the best of all but the last ``nonmono`` evaluations, then average every iterate from
there on (torch's ASGD with t0 = the trigger and lambd = 0 is exactly the optimizer unchanged
plus this running mean). ``asgd`` starts the running mean at a fixed step, ``ema`` keeps
``avg = decay * avg + (1 - decay) * w`` from a fixed step.

Once averaging is active the averaged weights are the model: the trainer evaluates them, saves
them as ``model/`` (best) and ``model_last/`` -- so ``rnnkit export`` ships them -- while training
continues from the raw weights. The averages live in the optimizer's per-parameter state under
``"avg"`` (so checkpoints carry them like Adam's moments, shape-checked on resume); the counters
(``avg_active``, ``avg_count``, ``avg_history``) live in the trainer's JSON state.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Optional

import torch
from torch import Tensor

AVERAGES = ("none", "ema", "asgd", "nt-asgd")
AVG_KEY = "avg"
# Trainer state entries (checkpoint state.json), with the values a run without averaging has;
# checkpoints written before averaging existed lack them and resume with these.
STATE_DEFAULTS = {"avg_active": False, "avg_count": 0, "avg_history": []}


class WeightAverager:
    def __init__(self, kind: str, params: list[Tensor], optimizer: torch.optim.Optimizer, st: dict,
                 start: int = 0, decay: float = 0.999, nonmono: int = 5, mode: str = "min"):
        if kind not in AVERAGES:
            raise ValueError(f"unknown average {kind!r}; allowed: {', '.join(AVERAGES)}")
        self.kind, self.params, self.optimizer, self.st = kind, params, optimizer, st
        self.start, self.decay, self.nonmono, self.mode = start, decay, nonmono, mode
        for k, v in STATE_DEFAULTS.items():
            st.setdefault(k, list(v) if isinstance(v, list) else v)

    @property
    def active(self) -> bool:
        return bool(self.st["avg_active"])

    def _tracked(self) -> Iterator[tuple[Tensor, dict]]:
        # Adam / AdamW / RMSprop initialise a parameter's state on its first step when it is empty:
        # a parameter they have never stepped (no gradient yet) is left out rather than given a
        # state they would mistake for theirs. SGD reads its state with .get(), and plain SGD keeps none.
        lazy = not isinstance(self.optimizer, torch.optim.SGD)
        for p in self.params:
            state = self.optimizer.state[p]
            if AVG_KEY in state or (not self.active and (state or not lazy)):
                yield p, state

    def _activate(self, step: int) -> None:
        with torch.no_grad():
            for p, state in self._tracked():
                state[AVG_KEY] = p.detach().clone()
        self.st["avg_active"], self.st["avg_count"] = True, 1

    def after_step(self, step: int) -> Optional[str]:
        """Call after optimizer step number ``step`` (1-based). Returns a log line when averaging starts."""
        if self.kind == "none":
            return None
        if not self.active:
            if self.kind in ("ema", "asgd") and step >= max(1, self.start):
                self._activate(step)
                return f"averaging weights ({self.kind}) from step {step}"
            return None
        with torch.no_grad():
            self.st["avg_count"] += 1
            weight = 1.0 - self.decay if self.kind == "ema" else 1.0 / self.st["avg_count"]
            for p, state in self._tracked():
                state[AVG_KEY].lerp_(p.detach(), weight)
        return None

    def observe(self, value: float, step: int) -> Optional[str]:
        """After a scheduled evaluation: the NT-ASGD trigger. Returns a log line when averaging starts."""
        if self.kind != "nt-asgd" or self.active or not math.isfinite(value):
            return None
        hist = self.st["avg_history"]
        fired = False
        if len(hist) > self.nonmono:
            best = min(hist[:-self.nonmono]) if self.mode == "min" else max(hist[:-self.nonmono])
            fired = value > best if self.mode == "min" else value < best
        hist.append(value)
        if fired:
            self._activate(step)
            return (f"averaging weights (nt-asgd) from step {step}: {value:.4g} is worse than the best "
                    f"before the last {self.nonmono} evaluations")
        return None

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """The averaged weights in the model for the duration (evaluate, save); raw ones after."""
        if not self.active:
            yield
            return
        keep = []
        with torch.no_grad():
            for p, state in self._tracked():
                keep.append((p, p.detach().clone()))
                p.copy_(state[AVG_KEY])
        try:
            yield
        finally:
            with torch.no_grad():
                for p, raw in keep:
                    p.copy_(raw)

    def check_resumed(self, where) -> None:
        """After loading a checkpoint: the counters are sane and the averages are there."""
        from rnnkit.core.train.checkpoint import CheckpointError

        st = self.st
        if not isinstance(st["avg_active"], bool) or not (isinstance(st["avg_count"], int)
                                                          and not isinstance(st["avg_count"], bool)
                                                          and 0 <= st["avg_count"] <= 10 ** 12):
            raise CheckpointError(f"checkpoint {where}: avg_active / avg_count are damaged")
        if not (isinstance(st["avg_history"], list) and len(st["avg_history"]) <= 10 ** 6
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                        for v in st["avg_history"])):
            raise CheckpointError(f"checkpoint {where}: avg_history must be a list of finite numbers")
        if st["avg_active"] and self.kind == "none":
            raise CheckpointError(f"checkpoint {where} holds averaged weights but this run has average=none: "
                                  "resume with the run's average setting")
        if st["avg_active"] and not any(AVG_KEY in self.optimizer.state[p] for p in self.params):
            raise CheckpointError(f"checkpoint {where}: averaging is active but the averaged weights are missing")
