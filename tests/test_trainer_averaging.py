"""Averaged weights (EMA, ASGD, NT-ASGD) and variable-length BPTT in the trainer: the averages
are what is evaluated and saved in model/ (hence exported), resume is exact, old checkpoints
resume; the LR follows the window length."""

from __future__ import annotations

import json
import random

import pytest
import torch

from rnnkit.core.models import registry
from rnnkit.core.train import trainer as trainer_mod
from rnnkit.core.train.checkpoint import find_latest
from rnnkit.core.tasks.lm import LMTask, variable_bptt_lengths
from rnnkit.core.train.trainer import TrainConfig, train
from test_trainer_toys import ToyLMTask, tiny_lm

torch.set_num_threads(1)


def cfg_for(tmp_path, name="run", **kw):
    base = dict(run_dir=str(tmp_path / name), device="cpu", optimizer="sgd", lr=0.5, max_steps=12, eval_every=12,
                checkpoint_every=0, log_every=4, quiet=True)
    return TrainConfig(**{**base, **kw})


class Snapshots(ToyLMTask):
    """Records the parameters at the start of every step (= after the previous step) and the
    parameters each evaluation sees."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.before_step: list[dict] = []
        self.evaluated: list[dict] = []

    def loss(self, model, batch, carry):
        self.before_step.append({k: v.detach().clone() for k, v in model.named_parameters()})
        return super().loss(model, batch, carry)

    def evaluate(self, model):
        self.evaluated.append({k: v.detach().clone() for k, v in model.named_parameters()})
        return super().evaluate(model)


def raw_final(run_dir) -> dict:
    from safetensors.torch import load_file

    return load_file(str(find_latest(run_dir / "checkpoints") / "model.safetensors"))


def saved(model_dir) -> dict:
    return dict(registry.load(model_dir).named_parameters())


def expected_average(task, run_dir, kind, start, decay=0.0):
    """Parameters after step s, s = start..last, averaged as the trainer should."""
    after = task.before_step[1:] + [raw_final(run_dir)]  # after[i] = params after step i + 1
    avg = None
    for s, params in enumerate(after, start=1):
        if s < start:
            continue
        if avg is None:
            avg, n = {k: params[k].clone() for k in after[0]}, 1
            continue
        n += 1
        w = 1 - decay if kind == "ema" else 1.0 / n
        for k in avg:
            avg[k] += w * (params[k] - avg[k])
    return avg


@pytest.mark.parametrize("kind,decay", [("asgd", 0.999), ("ema", 0.6)])
def test_averaged_weights_are_evaluated_and_saved(tmp_path, kind, decay):
    task = Snapshots()
    result = train(tiny_lm(), task, cfg_for(tmp_path, average=kind, average_start=5, ema_decay=decay))
    run = tmp_path / "run"
    expect = expected_average(task, run, kind, start=5, decay=decay)
    raw = raw_final(run)
    for directory in ("model", "model_last"):
        got = saved(run / directory)
        for k, v in expect.items():
            torch.testing.assert_close(got[k], v, rtol=0, atol=1e-6)
    assert any((raw[k] - expect[k]).abs().max() > 1e-4 for k in expect)  # the checkpoint keeps the raw weights
    for k, v in expect.items():  # the evaluation at step 12 saw the averages
        torch.testing.assert_close(task.evaluated[-1][k], v, rtol=0, atol=1e-6)
    state = json.loads((find_latest(run / "checkpoints") / "state.json").read_text())
    assert state["avg_active"] is True and state["avg_count"] == 12 - 5 + 1
    assert result.best_step == 12


def test_resume_with_averaging_is_exact(tmp_path):
    straight = train(tiny_lm(), ToyLMTask(), cfg_for(tmp_path, "a", average="asgd", average_start=3, eval_every=4))
    cfg = cfg_for(tmp_path, "b", average="asgd", average_start=3, eval_every=4, checkpoint_every=2)
    train(tiny_lm(), ToyLMTask(), cfg, stop_after_steps=6)
    resumed = train(tiny_lm(seed=9), ToyLMTask(), cfg, resume=True)
    assert resumed.best_metric == pytest.approx(straight.best_metric, abs=1e-7)
    a, b = saved(tmp_path / "a" / "model"), saved(tmp_path / "b" / "model")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-7)


class Scripted(ToyLMTask):
    def __init__(self, values, **kw):
        super().__init__(**kw)
        self.values = list(values)

    def evaluate(self, model):
        out = super().evaluate(model)
        out["val_loss"] = self.values.pop(0) if self.values else 9.0
        return out


def test_nt_asgd_starts_when_the_metric_stops_improving(tmp_path, capsys):
    """nonmono=2: the evaluation at step 10 (value 3.5) is worse than the best before the last two
    (3.0 at step 4), so averaging starts there and runs to the end."""
    task = Scripted([5.0, 3.0, 3.2, 3.1, 3.5, 2.0])
    train(tiny_lm(), task, cfg_for(tmp_path, average="nt-asgd", average_nonmono=2, eval_every=2))
    out = capsys.readouterr().out
    assert "averaging weights (nt-asgd) from step 10" in out
    state = json.loads((find_latest(tmp_path / "run" / "checkpoints") / "state.json").read_text())
    assert state["avg_active"] and state["avg_count"] == 3  # steps 10, 11, 12
    assert state["avg_history"] == [5.0, 3.0, 3.2, 3.1, 3.5]  # not extended once averaging runs


def test_a_checkpoint_from_before_averaging_resumes(tmp_path):
    cfg = cfg_for(tmp_path, checkpoint_every=3)
    train(tiny_lm(), ToyLMTask(), cfg, stop_after_steps=6)
    path = find_latest(tmp_path / "run" / "checkpoints") / "state.json"
    state = json.loads(path.read_text())
    for k in ("avg_active", "avg_count", "avg_history"):
        del state[k]  # what the trainer wrote before this change
    path.write_text(json.dumps(state))
    assert train(tiny_lm(), ToyLMTask(), cfg, resume=True).steps == 12


def test_average_setting_is_checked():
    with pytest.raises(ValueError, match="average must be"):
        TrainConfig(max_steps=1, average="swa").check()
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(max_steps=1, average="ema", ema_decay=1.0).check()


# --------------------------------------------------------------------------- variable-length BPTT
def test_variable_bptt_lengths_follow_awd_and_cover_the_stream():
    lengths = variable_bptt_lengths(100_001, 70, random.Random(0))
    assert sum(lengths) == 100_000 and min(lengths) >= 5
    short = sum(1 for t in lengths if t < 50)
    assert 0.02 < short / len(lengths) < 0.09  # ~5 % around bptt / 2
    long = [t for t in lengths[:-1] if t >= 50]
    assert abs(sum(long) / len(long) - 69.5) < 1.0  # N(bptt, 5), rounded down


def test_variable_bptt_windows_are_deterministic_and_scale_the_lr(tmp_path, monkeypatch):
    stream = torch.arange(4000) % 13
    task = LMTask(stream, stream[:200], batch_size=4, bptt=20, seed=3, variable_bptt=True)
    e1, e1b, e2 = task.train_batches(1), task.train_batches(1), task.train_batches(2)
    shapes = [x.shape[1] for x, _ in e1]
    assert shapes == [x.shape[1] for x, _ in e1b] and shapes != [x.shape[1] for x, _ in e2]
    assert len(e1) == len(shapes) and len(set(shapes)) > 3
    for x, y in e1:
        assert torch.equal(x[:, 1:], y[:, :-1])
    assert task.lr_scale((torch.zeros(4, 10), None)) == 0.5
    assert LMTask(stream, stream[:200], batch_size=4, bptt=20).lr_scale((torch.zeros(4, 10), None)) == 1.0

    seen = []
    real = trainer_mod._backward_and_step

    def spy(loss, optimizer, scaler, params, clip):
        seen.append(optimizer.param_groups[0]["lr"])
        return real(loss, optimizer, scaler, params, clip)

    monkeypatch.setattr(trainer_mod, "_backward_and_step", spy)
    model = tiny_lm(vocab=13)
    lengths = []

    class Recording(LMTask):
        def loss(self, model, batch, carry):
            lengths.append(batch[0].shape[1])
            return super().loss(model, batch, carry)

    train(model, Recording(stream, stream[:200], batch_size=4, bptt=20, seed=3, variable_bptt=True),
          cfg_for(tmp_path, max_steps=15, lr=0.1))
    assert seen == pytest.approx([0.1 * t / 20 for t in lengths])
