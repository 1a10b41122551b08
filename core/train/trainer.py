"""The model-agnostic training loop (minGPT's trainer: it knows nothing about the model).

A ``Task`` supplies the data, the loss and the evaluation; ``train(model, task, cfg)`` does
the rest: device and precision (decided once), optimizer and schedule, truncated BPTT
(the carry is detached between steps), evaluation, early stopping, checkpoints that resume
exactly, a run directory, and DDP under torchrun.

Run directory (``cfg.run_dir``)::

    config.json      {"train": resolved TrainConfig, "model": registry record, "task": task.describe(),
                      "hardware": {...}, "world_size": n}
    metrics.jsonl    see core/train/run_log.py
    model/           registry.save of the best model by task.metric (the last one if never evaluated)
    best.json        which evaluation model/ is: {"metric", "mode" (min|max), "best_step", "best_value",
                     "record"}; written right after model/ (core/train/run_log.py)
    model_last/      registry.save of the model at the end of the run
                     (with cfg.average active, both hold the averaged weights: core/train/averaging.py)
    checkpoints/latest/  see core/train/checkpoint.py
    loss.png         train loss and validation curve
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn

from rnnkit.core.train import device as devices
from rnnkit.core.train import distributed as ddp
from rnnkit.core.atomic import atomic_write_json
from rnnkit.core.train.averaging import STATE_DEFAULTS as AVG_STATE, WeightAverager
from rnnkit.core.train.checkpoint import (CheckpointError, find_latest, load_checkpoint, prepare_tmp_dir, save_checkpoint, save_rank_state,
                         saved_group_count, shared_tmp_dir)
from rnnkit.core.train.rng import preserved_rng, seed_everything, set_rng_state
from rnnkit.core.train.run_log import RunLog, write_best
from rnnkit.core.train.schedules import LRSchedule, build_optimizer
from rnnkit.core.train.types import NonFiniteLossError, Task, TrainConfig, TrainResult, detach_state

# State keys newer than some checkpoints: an older checkpoint resumes with these values.
NEWER_STATE = {"cpu": 0.0}

__all__ = ["Task", "TrainConfig", "TrainResult", "NonFiniteLossError", "train", "detach_state",
           "seed_everything"]


def _total_steps(cfg: TrainConfig, task: Task) -> Optional[int]:
    """Steps the run will take, if known (cosine needs it; the progress bar likes it)."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    if cfg.max_epochs > 0:
        try:
            return cfg.max_epochs * len(task.train_batches(0))  # type: ignore[arg-type]
        except TypeError:
            return None
    return None


def _valid_in_train(task) -> bool:
    return bool(getattr(task, "valid_in_train", False))


def model_kept(task) -> str:
    """Which model run_dir/model/ holds, in words for the logs."""
    return "last (validation is in the training data)" if _valid_in_train(task) else "best"


def _improved(value: float, best: Optional[float], mode: str) -> bool:
    if not math.isfinite(value):
        return False
    return best is None or (value < best if mode == "min" else value > best)


def _save_model(model: nn.Module, directory: Path) -> None:
    from rnnkit.core.models import registry

    if hasattr(model, "kind") and hasattr(model, "config"):
        registry.save(model, directory)
    else:  # not an rnnkit model: weights only
        directory.mkdir(parents=True, exist_ok=True)
        registry.save_weights(model, directory / registry.WEIGHTS_FILE)


def _skip_trained(epoch_batches, batches, n: int, epoch: int, where) -> None:
    """Skip the ``n`` batches of this epoch trained on before the checkpoint. A count the epoch
    does not have (a tampered or foreign checkpoint) is an error, not a skip that never ends."""
    try:
        total = len(epoch_batches)
    except TypeError:
        total = None
    if total is not None and n > total:
        raise CheckpointError(f"checkpoint {where}: batch_in_epoch={n}, but epoch {epoch} has {total} batches")
    skipped = sum(1 for _ in itertools.islice(batches, n))
    if skipped < n:
        raise CheckpointError(f"checkpoint {where}: batch_in_epoch={n}, but epoch {epoch} has {skipped} batches")


def _backward_and_step(loss: Tensor, optimizer: torch.optim.Optimizer, scaler, params: list, clip: float) -> None:
    """Backward, clip the global grad norm (0 = off), step, zero the grads. With fp16 the
    GradScaler scales the loss and unscales before clipping, so the true gradients are clipped."""
    if scaler is not None:
        scaler.scale(loss).backward()
        if clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, clip)
        scaler.step(optimizer)  # skips the step when the scaled gradients overflowed
        scaler.update()
    else:
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


class _LossMeter:
    """The item-weighted loss sum of the open log window, and the first step whose loss was
    NaN / inf.

    CPU: plain floats, checked on the spot (a CPU ``.item()`` costs ~1 us, a tiny tensor op
    ~10-60 us), so the bad step never updates the weights. GPU: everything stays on the device
    and is read at log / eval / checkpoint steps, so training never waits for a host sync.
    """

    def __init__(self, device: torch.device, immediate: bool, loss_sum: float = 0.0, items: int = 0):
        self.immediate, self.items = immediate, items
        self.bad_step, self.bad_value = -1, float("nan")
        if immediate:
            self.sum: Any = loss_sum
        else:
            self.sum = torch.full((), loss_sum, device=device)
            self.first = torch.full((), -1, dtype=torch.long, device=device)
            self.value = torch.zeros((), device=device)

    def add(self, step: int, loss: Tensor, n_items: int) -> bool:
        """Count ``loss`` of step ``step`` (1-based); True when a non-finite loss must stop the run now."""
        self.items += int(n_items)
        if self.immediate:
            v = loss.item()
            if not math.isfinite(v):
                self.bad_step, self.bad_value = step, v
                return True
            self.sum += v * n_items
            return False
        lv = loss.detach().float()
        new = ~torch.isfinite(lv) & (self.first < 0)
        self.first = torch.where(new, torch.full_like(self.first, step), self.first)
        self.value = torch.where(new, lv, self.value)
        self.sum += lv * n_items
        return False

    def first_bad(self) -> tuple[int, float]:
        if self.immediate:
            return self.bad_step, self.bad_value
        return int(self.first.item()), float(self.value.item())

    def window(self) -> tuple[float, int]:
        """(loss sum, items) of the open window, as plain numbers."""
        return float(self.sum), self.items

    def mean_and_reset(self) -> float:
        total, items = self.window()
        self.sum = 0.0 if self.immediate else self.sum.zero_()
        self.items = 0
        return total / max(items, 1)


class _Run:
    """State shared by the loop and its periodic jobs (evaluate, checkpoint, finite check)."""

    def __init__(self, model, task, cfg, info, device, precision, optimizer, schedule, scaler, log, run_dir):
        self.model, self.task, self.cfg, self.info = model, task, cfg, info
        self.device, self.precision = device, precision
        self.optimizer, self.schedule, self.scaler, self.log = optimizer, schedule, scaler, log
        self.run_dir, self.ckpt_root = run_dir, run_dir / "checkpoints"
        self.main = info.is_main
        # Everything here goes into the checkpoint (JSON).
        self.st = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best_metric": None, "best_step": None,
                   "patience_best": None, "bad_evals": 0, "elapsed": 0.0, "eval_step": -1, "last_eval": {},
                   "log_loss_sum": 0.0, "log_items": 0,  # the open log window, so resumed logs match
                   "cpu": 0.0}  # CPU seconds of the earlier calls (max_cpu_seconds)
        self.st.update({k: list(v) if isinstance(v, list) else v for k, v in AVG_STATE.items()})
        self.averager: Optional[WeightAverager] = None  # set by train() once the parameters are known
        self.carry: Any = None
        self.ckpt_step = -1
        self.meter = _LossMeter(device, immediate=device.type == "cpu" and not info.enabled)
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.elapsed_before = 0.0
        self.net: nn.Module = model  # the DDP wrapper under torchrun (set by _start)
        self.params: list[Tensor] = []
        self.rate_items = 0  # items since the last log line in this process (for items/s)
        self.last_log_t = time.perf_counter()

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t0

    def cpu_used(self) -> float:
        """CPU seconds of the whole run: the earlier calls' and this one's (every thread of the process)."""
        return self.st["cpu"] + time.process_time() - self.cpu0

    def cpu_progress(self) -> Optional[float]:
        """The budget's fraction spent, when the cosine schedule runs on the CPU clock."""
        return self.cpu_used() / self.cfg.max_cpu_seconds if self.schedule.clock else None

    # ------------------------------------------------------------------ the loop's pieces
    def restore(self):
        """Load ``checkpoints/latest`` into the model, optimizer, schedule, scaler and ``st``."""
        st, info = self.st, self.info
        ckpt = load_checkpoint(self.ckpt_root, self.model, self.optimizer, self.device, rank=info.rank)
        if ckpt.state.get("world_size", 1) != info.world_size:
            raise ValueError(f"the checkpoint was written by {ckpt.state.get('world_size', 1)} process(es), this run "
                             f"has {info.world_size}: resume with the same torchrun --nproc_per_node")
        missing = [k for k in (*st, "schedule") if k not in ckpt.state and k not in AVG_STATE and k not in NEWER_STATE]
        if missing:
            raise CheckpointError(f"checkpoint {ckpt.path} lacks {missing}: not a trainer checkpoint")
        st.update({k: ckpt.state[k] if k in ckpt.state else copy.deepcopy({**AVG_STATE, **NEWER_STATE}[k])
                   for k in st})
        try:
            self.schedule.load_state_dict(ckpt.state["schedule"])
            if self.scaler is not None and ckpt.state.get("scaler"):
                self.scaler.load_state_dict(ckpt.state["scaler"])
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise CheckpointError(f"checkpoint {ckpt.path}: schedule or grad-scaler state is damaged "
                                  f"({type(e).__name__}: {e})") from None
        self.carry, self.ckpt_step, self.elapsed_before = ckpt.carry, st["step"], st["elapsed"]
        if self.log.bar is not None:
            self.log.bar.update(st["step"])
        return ckpt

    def step(self, batch, stop_after_steps: Optional[int]) -> Optional[str]:
        """One optimizer step on ``batch``, then its log line, evaluation and checkpoint when due.
        Returns why to stop, or None."""
        st, cfg = self.st, self.cfg
        lr = self.schedule.apply(st["step"], self.cpu_progress())
        lr_scale = getattr(self.task, "lr_scale", None)  # e.g. variable-length BPTT: window length / bptt
        if lr_scale is not None:
            scale = float(lr_scale(batch))
            if scale != 1.0:
                for group in self.optimizer.param_groups:
                    group["lr"] = lr * scale
        with devices.autocast(self.device, self.precision):
            loss, n_items, carry = self.task.loss(self.net, batch, self.carry)
        self.carry = detach_state(carry)  # truncated BPTT: gradients stop at the chunk boundary
        if self.meter.add(st["step"] + 1, loss, n_items):
            self.check_finite()  # raises before the bad step touches the weights
        _backward_and_step(loss, self.optimizer, self.scaler, self.params, cfg.grad_clip)
        self.rate_items += int(n_items)
        st["step"] += 1
        st["batch_in_epoch"] += 1
        started = self.averager.after_step(st["step"])
        if started:
            self.log.print(started)
        self.log.step()

        step = st["step"]
        at_log = step % cfg.log_every == 0
        if at_log:
            self.check_finite()
            now = time.perf_counter()
            self.log.train_line({"kind": "train", "step": step, "epoch": st["epoch"],
                                 "loss": self.meter.mean_and_reset(),
                                 "items_per_s": self.rate_items * self.info.world_size / max(now - self.last_log_t, 1e-9),
                                 "lr": lr, "elapsed": round(self.elapsed(), 3),
                                 "call_minutes": round((now - self.t0) / 60, 3)})
            self.rate_items, self.last_log_t = 0, now
        t_pause = time.perf_counter()  # evaluation and checkpoints do not count against items/s
        early = False
        if cfg.eval_every and step % cfg.eval_every == 0:
            self.check_finite()
            early = self.evaluate(scheduled=True)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            self.checkpoint()
        self.last_log_t += time.perf_counter() - t_pause
        return "early_stop" if early else self.stop_reason(stop_after_steps, at_log)

    def stop_reason(self, stop_after_steps: Optional[int], at_log: bool, budget: bool = True) -> Optional[str]:
        """The step or time limit reached, if any (the step limits win over the budget)."""
        step, cfg = self.st["step"], self.cfg
        if cfg.max_steps and step >= cfg.max_steps:
            return "max_steps"
        if stop_after_steps is not None and step >= stop_after_steps:
            return "paused"
        if budget and cfg.max_cpu_seconds > 0 and (at_log or not self.info.enabled):
            if ddp.any_rank(self.cpu_used() >= cfg.max_cpu_seconds, self.info, self.device):
                return "cpu_budget"
        if budget and cfg.max_minutes > 0 and (at_log or not self.info.enabled):
            # under DDP only at log steps: agreeing on it needs a collective
            if ddp.any_rank(time.perf_counter() - self.t0 >= cfg.max_minutes * 60, self.info, self.device):
                return "time_budget"
        return None

    def end_epoch(self) -> Optional[str]:
        """The epoch ran out: count it, and evaluate when evaluation is per epoch."""
        st = self.st
        if st["batch_in_epoch"] == 0:
            raise ValueError(f"task.train_batches({st['epoch']}) yielded no batches")
        st["epoch"] += 1
        st["batch_in_epoch"] = 0
        self.carry = None
        if self.cfg.eval_every:
            return None
        t_pause = time.perf_counter()
        self.check_finite()
        early = self.evaluate(scheduled=True)
        self.last_log_t += time.perf_counter() - t_pause
        return "early_stop" if early else None

    def evaluate(self, scheduled: bool) -> bool:
        """Evaluate on rank 0 and keep the best model; True when early stopping says stop.

        ``scheduled=False`` (the run's closing evaluation) only updates the best model: it must
        not move the plateau schedule or the patience count, or a resumed run would differ.
        """
        st, task = self.st, self.task
        value = float("nan")
        if self.main:
            self.model.eval()
            with self.averaged():  # once averaging is active the averages are the model
                with preserved_rng(), torch.no_grad(), devices.autocast(self.device, self.precision):
                    metrics = {k: float(v) for k, v in task.evaluate(self.model).items()}
                if task.metric not in metrics:
                    raise ValueError(f"task.evaluate() returned {sorted(metrics)}, without task.metric "
                                     f"{task.metric!r}")
                value = metrics[task.metric]
                record = {"kind": "eval", "step": st["step"], "epoch": st["epoch"], **metrics,
                          "elapsed": round(self.elapsed(), 3)}
                # a validation split the model trains on cannot choose: keep the latest evaluation
                is_best = _improved(value, st["best_metric"], task.metric_mode) or _valid_in_train(task)
                if is_best:
                    st["best_metric"], st["best_step"] = value, st["step"]
                    _save_model(self.model, self.run_dir / "model")
                    write_best(self.run_dir, task.metric, task.metric_mode, record)  # says what model/ is
            self.model.train()
            st["last_eval"] = {"step": st["step"], **metrics}
            self.log.eval_line(record, task.metric, is_best and not _valid_in_train(task))  # no "best" of seen rows
        st["eval_step"] = st["step"]
        if self.info.enabled:  # every rank must take the same schedule / early-stop decision
            t = torch.tensor([value], dtype=torch.float64, device=self.device)
            torch.distributed.broadcast(t, src=0)
            value = float(t.item())
            if not self.main and _improved(value, st["best_metric"], task.metric_mode):
                st["best_metric"], st["best_step"] = value, st["step"]  # same TrainResult on every rank
        if not scheduled:
            return False
        if self.averager is not None:
            started = self.averager.observe(value, st["step"])
            if started:
                self.log.print(started)
        self.schedule.observe(value)
        if _improved(value, st["patience_best"], task.metric_mode):
            st["patience_best"], st["bad_evals"] = value, 0
        else:
            st["bad_evals"] += 1
        return bool(self.cfg.early_stop_patience) and st["bad_evals"] >= self.cfg.early_stop_patience

    def averaged(self):
        return self.averager.swapped() if self.averager is not None else contextlib.nullcontext()

    def checkpoint(self) -> None:
        self.check_finite()  # never overwrite a good checkpoint with a diverged model
        self.st["log_loss_sum"], self.st["log_items"] = self.meter.window()
        tmp = None
        if self.info.enabled:  # every rank's own carry and RNG go into the same directory first
            tmp = shared_tmp_dir(self.ckpt_root, self.st["step"])
            if self.main:
                prepare_tmp_dir(tmp)
            ddp.barrier(self.info)
            if not self.main:
                save_rank_state(tmp, self.info.rank, self.carry)
            ddp.barrier(self.info)
        if self.main:
            state = {**self.st, "elapsed": self.elapsed(), "cpu": self.cpu_used(), "schedule": self.schedule.state_dict(),
                     "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                     "world_size": self.info.world_size}
            save_checkpoint(self.ckpt_root, self.model, self.optimizer, state, self.carry, tmp)
        ddp.barrier(self.info)
        self.ckpt_step = self.st["step"]

    def check_finite(self) -> None:
        step, value = self.meter.first_bad()
        if ddp.any_rank(step >= 0, self.info, self.device):
            last = find_latest(self.ckpt_root) if self.main else None
            self.log.write({"kind": "error", "step": step, "error": f"non-finite loss {value}"})
            self.log.print(f"stopped: non-finite loss at step {step}")
            self.log.close()
            raise NonFiniteLossError(step if step >= 0 else self.st["step"], value, last)

    def write_config(self, resume: bool) -> None:
        cfg, model = self.cfg, self.model
        record = None
        if hasattr(model, "kind") and hasattr(model, "config"):
            from rnnkit.core.models.registry import model_record
            record = model_record(model)
        describe = getattr(self.task, "describe", None)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.run_dir / "config.json", {
            "train": {**asdict(cfg), "device": str(self.device), "precision": self.precision},
            "model": record, "task": describe() if callable(describe) else None,
            "hardware": devices.describe(self.device, self.precision), "world_size": self.info.world_size})
        self.log.start(self.st["step"] if resume else None)
        n = sum(p.numel() for p in model.parameters())
        self.log.print(f"training {getattr(self.task, 'name', 'task')} on {self.device} ({self.precision}), "
                       f"{n:,} parameters" + (f", resuming at step {self.st['step']}" if resume else ""))
        warning = devices.precision_warning(self.device, self.precision)
        if warning:
            self.log.print(warning)

    def finish(self, stop_reason: str) -> TrainResult:
        st = self.st
        self.check_finite()
        # The closing evaluation, before the checkpoint so it records this best metric. Not when
        # paused: the run goes on, and an uninterrupted one never evaluates here (--resume must
        # keep the model it would have kept).
        if st["eval_step"] != st["step"] and stop_reason != "paused":
            self.evaluate(scheduled=False)
        if self.ckpt_step != st["step"]:
            self.checkpoint()
        if self.main:
            with self.averaged():
                _save_model(self.model, self.run_dir / "model_last")
                if not (self.run_dir / "model").exists():  # never evaluated to a finite metric
                    _save_model(self.model, self.run_dir / "model")
            from rnnkit.core.train.plots import plot_losses
            from rnnkit.core.train.run_log import read_metrics
            plot_losses(read_metrics(self.run_dir / "metrics.jsonl"), self.run_dir / "loss.png", self.task.metric)
            self.log.print(f"done: {stop_reason} at step {st['step']}, {model_kept(self.task)} {self.task.metric} "
                           f"{st['best_metric']} (step {st['best_step']}), {self.elapsed():.1f}s")
        self.log.close()
        ddp.barrier(self.info)
        return TrainResult(run_dir=str(self.run_dir), metric=self.task.metric, best_metric=st["best_metric"],
                           best_step=st["best_step"], steps=st["step"], epochs=st["epoch"],
                           wall_seconds=self.elapsed(), stop_reason=stop_reason, last_eval=st["last_eval"],
                           model_dir=str(self.run_dir / "model"), last_model_dir=str(self.run_dir / "model_last"),
                           checkpoint_dir=str(self.ckpt_root / "latest"))


def train(model: nn.Module, task: Task, cfg: TrainConfig, resume: bool = False,
          stop_after_steps: Optional[int] = None) -> TrainResult:
    """Train ``model`` on ``task``; see the module docstring for what lands in ``cfg.run_dir``.

    resume: continue exactly from ``run_dir/checkpoints/latest`` (same data order, RNG, carry).
    stop_after_steps: checkpoint and return once this many steps are done, as if paused; the
        schedule still aims at ``max_steps``, so a resumed run matches an uninterrupted one.
    Raises NonFiniteLossError on a NaN / inf loss, ValueError for bad settings.
    """
    run, ckpt = _start(model, task, cfg, resume)
    st = run.st
    try:
        stop_reason = run.stop_reason(stop_after_steps, at_log=False, budget=False)
        while stop_reason is None:
            if cfg.max_epochs and st["epoch"] >= cfg.max_epochs:
                stop_reason = "max_epochs"
                break
            epoch_batches = task.train_batches(st["epoch"])
            batches = iter(epoch_batches)
            if ckpt is not None:
                _skip_trained(epoch_batches, batches, st["batch_in_epoch"], st["epoch"], ckpt.path)
                set_rng_state(*ckpt.rng)  # after the skip, so a task that draws from global RNG replays the same
                ckpt = None
            else:
                run.carry, st["batch_in_epoch"] = None, 0  # a new epoch starts from a fresh state
            for batch in batches:
                stop_reason = run.step(batch, stop_after_steps)
                if stop_reason:
                    break
            else:  # the epoch ran out
                stop_reason = run.end_epoch()
        return run.finish(stop_reason)
    finally:
        run.log.close()  # also on errors: no dangling progress bar or open log file


def _start(model: nn.Module, task: Task, cfg: TrainConfig, resume: bool):
    """Check the settings, decide device / precision / DDP once, build the optimizer, schedule and
    log, and restore the checkpoint when resuming. Returns (run, checkpoint or None)."""
    cfg.check()
    if task.metric_mode not in ("min", "max"):
        raise ValueError(f"task.metric_mode must be 'min' or 'max', got {task.metric_mode!r}")
    if _valid_in_train(task):
        uses = [f"train.{k}" for k, on in (("early_stop_patience", cfg.early_stop_patience > 0),
                                           ("schedule=plateau", cfg.schedule == "plateau"),
                                           ("average=nt-asgd", cfg.average == "nt-asgd"))
                if on]
        if uses:  # each would be steered by a metric the model has trained on
            raise ValueError(f"data.train_on_valid: the validation split is in the training data, so it cannot "
                             f"drive {', '.join(uses)}; take the settings a held-out run chose (a step or "
                             f"CPU budget, schedule cosine/constant) and set early_stop_patience=0")
    info, device = ddp.setup_distributed(devices.resolve_device(cfg.device))
    precision = devices.resolve_precision(cfg.precision, device)
    devices.configure_backends(device, precision)
    if info.enabled or hasattr(task, "rank"):
        try:  # the sharding hint: train_batches should yield only this rank's share
            task.rank, task.world_size = info.rank, info.world_size  # type: ignore[misc]
        except AttributeError as e:
            raise ValueError(f"task {type(task).__name__} must accept .rank / .world_size attributes") from e
    run_dir = Path(cfg.run_dir)
    has_ckpt = find_latest(run_dir / "checkpoints") is not None
    if resume and not has_ckpt:
        raise ValueError(f"nothing to resume: no complete checkpoint in {run_dir / 'checkpoints'}")
    if not resume and has_ckpt:
        raise ValueError(f"{run_dir} already holds a checkpoint: resume it or pick a new run_dir")

    total = _total_steps(cfg, task)  # before seeding: a task may draw randomness to build batches
    seed_everything(cfg.seed + info.rank)  # ranks draw different dropout masks
    model.to(device).train()
    # A run checkpointed with one parameter group (before decay groups) resumes with one group.
    legacy = resume and saved_group_count(run_dir / "checkpoints") == 1
    optimizer = build_optimizer(list(model.parameters()) if legacy else model, cfg.optimizer, cfg.lr,
                                cfg.weight_decay, cfg.momentum)
    # A cosine with no step count but a CPU budget decays on the CPU clock.
    clock = cfg.schedule == "cosine" and not total and cfg.max_cpu_seconds > 0
    schedule = LRSchedule(optimizer, cfg.schedule, cfg.lr, cfg.warmup_steps, total, cfg.min_lr_ratio,
                          task.metric_mode, cfg.plateau_factor, cfg.plateau_patience, clock=clock)
    scaler = devices.make_grad_scaler(device, precision)
    log = RunLog(run_dir / "metrics.jsonl", info.is_main, cfg.quiet, total, 0, getattr(task, "name", "train"),
                 budget_minutes=cfg.max_minutes)
    run = _Run(model, task, cfg, info, device, precision, optimizer, schedule, scaler, log, run_dir)
    ckpt = run.restore() if resume else None
    run.net = ddp.wrap_model(model, info, device)
    if run.main:
        run.write_config(resume)
    run.params = [p for p in model.parameters() if p.requires_grad]
    run.averager = WeightAverager(cfg.average, run.params, optimizer, run.st, cfg.average_start, cfg.ema_decay,
                                  cfg.average_nonmono, task.metric_mode)
    if resume:
        run.averager.check_resumed(run.ckpt_root / "latest")
    run.meter = _LossMeter(device, run.meter.immediate, float(run.st["log_loss_sum"]), int(run.st["log_items"]))
    return run, ckpt
