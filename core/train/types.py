"""The trainer's public types: the Task protocol, TrainConfig, TrainResult, NonFiniteLossError,
and ``detach_state`` (truncated BPTT). ``rnnkit.core.train.trainer`` re-exports all of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Protocol

from torch import Tensor, nn


class Task(Protocol):
    """What the trainer needs from a task (see docs/CONTRACTS.md).

    Under DDP the trainer sets ``task.rank`` and ``task.world_size`` before the first
    ``train_batches`` call; ``train_batches`` should then yield only this rank's share, the
    same number of batches on every rank. Single process: rank 0, world_size 1.
    """

    name: str
    metric: str
    metric_mode: str
    # Optional ``valid_in_train`` (bool): the validation rows are also training rows (recipe
    # ``data.train_on_valid``), so the metric cannot choose a model: model/ is the last evaluation.

    def train_batches(self, epoch: int) -> Iterable[Any]: ...
    def loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[Tensor, int, Any]: ...
    def evaluate(self, model: nn.Module) -> dict[str, float]: ...


@dataclass
class TrainConfig:
    run_dir: str = "runs/run"
    device: str = "auto"          # auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps
    precision: str = "auto"       # auto | fp32 | bf16 | fp16 (fp16 = CUDA + GradScaler)
    optimizer: str = "adamw"      # sgd | adam | adamw | rmsprop
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0         # sgd, rmsprop
    grad_clip: float = 1.0        # max global grad norm; 0 = off
    schedule: str = "constant"    # constant | cosine | plateau
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1     # cosine ends at lr * min_lr_ratio
    plateau_factor: float = 0.5
    plateau_patience: int = 2     # evaluations without improvement before lr *= plateau_factor
    max_steps: int = 0            # 0 = no step limit
    max_epochs: int = 0           # 0 = no epoch limit
    max_minutes: float = 0.0      # wall-clock budget of this call; 0 = none. Stops cleanly + checkpoints
    # CPU-seconds budget of the whole run (every call's train(): user + system time of every thread of
    # the process, evaluations and checkpoints included, reading the data before it not; 0 = none). A
    # wall clock charges a run for the other jobs of a shared machine, CPU time much less. With schedule
    # cosine and no max_steps / max_epochs the decay runs on this clock (progress = CPU seconds spent /
    # budget), so it ends where the budget does.
    max_cpu_seconds: float = 0.0
    eval_every: int = 0           # steps between evaluations; 0 = at each epoch end
    checkpoint_every: int = 500   # steps between checkpoints; 0 = only at the end
    early_stop_patience: int = 0  # evaluations without improvement of task.metric; 0 = off
    seed: int = 1337
    log_every: int = 50
    quiet: bool = False           # log lines instead of a progress bar (for nohup logs)
    # Averaged weights (core/train/averaging.py): none | ema | asgd | nt-asgd. Once active, the averages
    # are what is evaluated and saved in model/ and model_last/ (so exported); training goes on
    # from the raw weights.
    average: str = "none"
    average_start: int = 0        # ema / asgd: first step averaged
    ema_decay: float = 0.999      # ema: avg = decay * avg + (1 - decay) * w each step
    average_nonmono: int = 5      # nt-asgd: start once an evaluation is worse than the best before the last n

    def check(self) -> None:
        if self.max_steps <= 0 and self.max_epochs <= 0 and self.max_minutes <= 0 and self.max_cpu_seconds <= 0:
            raise ValueError("set max_steps, max_epochs, max_minutes or max_cpu_seconds: the run needs an end")
        if self.max_cpu_seconds < 0:
            raise ValueError(f"max_cpu_seconds must be >= 0 (0 = none), got {self.max_cpu_seconds}")
        for name in ("max_steps", "max_epochs", "eval_every", "checkpoint_every", "early_stop_patience",
                     "warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        from rnnkit.core.train.averaging import AVERAGES

        if self.average not in AVERAGES:
            raise ValueError(f"average must be one of {', '.join(AVERAGES)}, got {self.average!r}")
        if self.average_start < 0 or self.average_nonmono < 0:
            raise ValueError("average_start and average_nonmono must be >= 0")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay}")


@dataclass
class TrainResult:
    run_dir: str
    metric: str
    best_metric: Optional[float]
    best_step: Optional[int]
    steps: int
    epochs: int                  # epoch index reached (completed epochs when the run ends at an epoch end)
    wall_seconds: float          # over all resumed segments
    stop_reason: str             # max_steps | max_epochs | time_budget | cpu_budget | early_stop | paused
    last_eval: dict = field(default_factory=dict)
    model_dir: str = ""
    last_model_dir: str = ""
    checkpoint_dir: str = ""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the run stopped and its last checkpoint was left as it was."""

    user_facing = True  # the CLI prints the message as one line, not a traceback

    def __init__(self, step: int, value: float, checkpoint: Optional[Path]):
        self.step, self.value, self.checkpoint = step, value, checkpoint
        where = f"the last good checkpoint {checkpoint} is untouched" if checkpoint else "no checkpoint was written"
        super().__init__(f"non-finite loss ({value}) at step {step}; training stopped and {where}. "
                         "Try a lower lr, grad_clip > 0, or precision fp32.")


def detach_state(carry: Any) -> Any:
    """Detach every tensor in nested tuples / lists / dicts (word_language_model's repackage_hidden),
    so backprop stops at the chunk boundary (truncated BPTT)."""
    if isinstance(carry, Tensor):
        return carry.detach()
    if isinstance(carry, tuple):
        return tuple(detach_state(c) for c in carry)
    if isinstance(carry, list):
        return [detach_state(c) for c in carry]
    if isinstance(carry, dict):
        return {k: detach_state(v) for k, v in carry.items()}
    return carry
