"""Trainer: exact resume, run directory, non-finite loss, early stop, time budget, schedules."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rnnkit.core.models import registry
from rnnkit.core.train.checkpoint import find_latest, load_checkpoint
from rnnkit.core.train.schedules import LRSchedule
from rnnkit.core.train.trainer import NonFiniteLossError, TrainConfig, detach_state, seed_everything, train
from test_trainer_toys import ToyLMTask, tiny_lm

torch.set_num_threads(1)


def cfg_for(tmp_path, name="run", **kw):
    base = dict(run_dir=str(tmp_path / name), device="cpu", lr=3e-3, max_steps=24, eval_every=10,
                checkpoint_every=0, log_every=4, quiet=True)
    return TrainConfig(**{**base, **kw})


def params_of(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_params(a, b, tol=1e-7):
    assert a.keys() == b.keys()
    for k in a:
        diff = (a[k] - b[k]).abs().max().item()
        assert diff <= tol, (k, diff)


def train_losses(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines) if r["kind"] == "train"]


@pytest.mark.parametrize("schedule,optimizer,global_rng", [
    ("constant", "adamw", False),
    ("cosine", "sgd", True),      # momentum buffers; a task that draws from the global RNG per batch
    ("plateau", "rmsprop", False),
])
def test_resume_continues_exactly(tmp_path, schedule, optimizer, global_rng):
    # 2N straight == N, stop, resume for N more: same weights, same losses after the stop.
    # N = 13 stops mid-epoch (36 batches an epoch here? no: 1200 tokens / 4 rows / 8 = 37) and off
    # every eval / log boundary; 2N = 26 crosses an epoch only with the short stream below.
    kw = dict(schedule=schedule, optimizer=optimizer, momentum=0.9 if optimizer != "adamw" else 0.0,
              warmup_steps=3, max_steps=26, eval_every=5, plateau_patience=1)
    task = lambda: ToyLMTask(n_tokens=400, global_rng_noise=global_rng)  # 12 batches an epoch
    straight = tiny_lm()
    train(straight, task(), cfg_for(tmp_path, "straight", **kw))

    split = tiny_lm()
    first = train(split, task(), cfg_for(tmp_path, "split", **kw), stop_after_steps=13)
    assert first.stop_reason == "paused" and first.steps == 13
    resumed = tiny_lm(seed=99)  # different init: everything must come from the checkpoint
    result = train(resumed, task(), cfg_for(tmp_path, "split", **kw), resume=True)
    assert result.steps == 26 and result.epochs == 2
    assert_same_params(params_of(straight), params_of(resumed))
    assert train_losses(tmp_path / "straight") == train_losses(tmp_path / "split")
    # the pause evaluated nothing: the same evaluations, so the same kept model
    assert eval_steps(tmp_path / "straight") == eval_steps(tmp_path / "split")
    best = [json.loads((tmp_path / r / "best.json").read_text()) for r in ("straight", "split")]
    assert best[0]["best_step"] == best[1]["best_step"]
    assert_same_params(params_of(registry.load(tmp_path / "straight" / "model")),
                       params_of(registry.load(tmp_path / "split" / "model")))


def eval_steps(run) -> list[int]:
    return [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "eval"]


def test_resume_with_longer_max_steps(tmp_path):
    straight = tiny_lm()
    train(straight, ToyLMTask(), cfg_for(tmp_path, "a", max_steps=30))
    split = tiny_lm()
    train(split, ToyLMTask(), cfg_for(tmp_path, "b", max_steps=15))
    resumed = tiny_lm(seed=5)
    train(resumed, ToyLMTask(), cfg_for(tmp_path, "b", max_steps=30), resume=True)
    assert_same_params(params_of(straight), params_of(resumed))


def test_run_directory_contents(tmp_path):
    model = tiny_lm()
    cfg = cfg_for(tmp_path, max_steps=30, eval_every=10, checkpoint_every=10)
    result = train(model, ToyLMTask(), cfg)
    run = tmp_path / "run"
    conf = json.loads((run / "config.json").read_text())
    assert conf["train"]["max_steps"] == 30 and conf["train"]["precision"] == "fp32"
    assert conf["model"]["kind"] == "lm" and conf["model"]["config"]["hidden_size"] == 16
    assert conf["task"]["bptt"] == 8
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in train_recs] == list(range(4, 31, 4))
    assert {"epoch", "loss", "items_per_s", "lr", "elapsed"} <= set(train_recs[0])
    assert train_recs[0]["items_per_s"] > 0 and train_recs[0]["lr"] == pytest.approx(3e-3)
    assert [r["step"] for r in evals] == [10, 20, 30]
    # model/ holds the best model by val_loss; model_last/ the final one
    best = min(evals, key=lambda r: r["val_loss"])
    assert result.best_step == best["step"] and result.best_metric == pytest.approx(best["val_loss"])
    reloaded = registry.load(run / "model")
    assert ToyLMTask().evaluate(reloaded)["val_loss"] == pytest.approx(best["val_loss"], abs=1e-6)
    # best.json says which evaluation model/ is and which way the metric points
    written = json.loads((run / "best.json").read_text())
    assert (written["metric"], written["mode"], written["best_step"]) == ("val_loss", "min", best["step"])
    assert written["record"] == best and written["best_value"] == best["val_loss"]
    assert_same_params(params_of(registry.load(run / "model_last")), params_of(model.eval()))
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert find_latest(run / "checkpoints") == run / "checkpoints" / "latest"
    assert json.loads((run / "checkpoints/latest/state.json").read_text())["step"] == 30


def test_training_reduces_loss(tmp_path):
    result = train(tiny_lm(dropout=0.0), ToyLMTask(), cfg_for(tmp_path, max_steps=80, eval_every=80, lr=1e-2))
    assert result.best_metric < math.log(16) - 0.5, result.best_metric  # well below a uniform guess


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = cfg_for(tmp_path, "bad", max_steps=40, checkpoint_every=5, eval_every=0)
    with pytest.raises(NonFiniteLossError, match=r"at step 7\b") as err:
        train(tiny_lm(), ToyLMTask(nan_at_step=7), cfg)
    assert err.value.step == 7
    latest = tmp_path / "bad" / "checkpoints" / "latest"
    assert err.value.checkpoint == latest
    assert json.loads((latest / "state.json").read_text())["step"] == 5
    # the checkpoint is the clean step-5 model, not one touched by the NaN step
    clean = tiny_lm()
    train(clean, ToyLMTask(), cfg_for(tmp_path, "clean", max_steps=5, eval_every=0))
    from_ckpt = tiny_lm(seed=3)
    load_checkpoint(latest.parent, from_ckpt)
    assert_same_params(params_of(clean), params_of(from_ckpt), tol=0.0)
    errors = [json.loads(line) for line in (tmp_path / "bad/metrics.jsonl").read_text().splitlines()]
    assert errors[-1]["kind"] == "error" and errors[-1]["step"] == 7


def test_early_stopping_on_task_metric(tmp_path):
    class Flat(ToyLMTask):
        metric, metric_mode = "val_acc", "max"

        def evaluate(self, model):
            self.evals = getattr(self, "evals", 0) + 1
            return {"val_acc": 0.5 if self.evals == 1 else 0.4}

    result = train(tiny_lm(), Flat(), cfg_for(tmp_path, max_steps=1000, eval_every=3, early_stop_patience=2))
    assert result.stop_reason == "early_stop" and result.steps == 9
    assert result.best_metric == 0.5 and result.best_step == 3
    from rnnkit.export.bundle import read_metrics  # what a bundle's manifest will say: the max, step 3

    m = read_metrics(tmp_path / "run")
    assert (m["metric"], m["mode"], m["best"]["step"], m["best"]["val_acc"]) == ("val_acc", "max", 3, 0.5)


def test_validation_in_training_data_keeps_the_last_model(tmp_path):
    # data.train_on_valid: the metric rises and falls on rows the model learns, so it chooses
    # nothing -- model/ is the last evaluation even when an earlier one scored higher
    class Seen(ToyLMTask):
        metric, metric_mode, valid_in_train = "val_acc", "max", True

        def evaluate(self, model):
            self.evals = getattr(self, "evals", 0) + 1
            return {"val_acc": 0.5 if self.evals == 1 else 0.4}

    model = tiny_lm()
    result = train(model, Seen(), cfg_for(tmp_path, max_steps=9, eval_every=3))
    assert (result.best_step, result.best_metric) == (9, 0.4)
    assert json.loads((tmp_path / "run/best.json").read_text())["best_step"] == 9
    assert_same_params(params_of(registry.load(tmp_path / "run/model")), params_of(model.eval()))
    from rnnkit.core.train.trainer import model_kept  # what the logs call model/

    assert model_kept(Seen()).startswith("last") and model_kept(ToyLMTask()) == "best"
    for kw, named in ((dict(early_stop_patience=2), "early_stop_patience"), (dict(schedule="plateau"), "plateau"),
                      (dict(average="nt-asgd"), "nt-asgd")):
        with pytest.raises(ValueError, match=f"train_on_valid.*{named}"):
            train(tiny_lm(), Seen(), cfg_for(tmp_path, f"refused-{named}", max_steps=9, eval_every=3, **kw))


def test_train_on_valid_adds_the_validation_rows_to_training(tmp_path):
    from rnnkit.core.tasks.common import user_or_corpus_splits

    splits = {"train": ["a", "b"], "valid": ["v"], "test": ["t"]}
    assert user_or_corpus_splits({}, None, splits.get, 0.1, 0) == (["a", "b"], ["v"], ["t"])
    assert user_or_corpus_splits({"train_on_valid": True}, None, splits.get, 0.1, 0) == (["a", "b", "v"], ["v"], ["t"])
    own = tmp_path / "own.txt"
    own.write_text("\n".join("xyz"[i % 3] * (i + 1) for i in range(20)))
    read = lambda p: p.read_text().split() if hasattr(p, "read_text") else open(p).read().split()
    train_rows, valid, _ = user_or_corpus_splits({"train_file": own, "train_on_valid": True}, read, None, 0.1, 0)
    assert len(valid) == 2 and sorted(train_rows) == sorted(read(own))  # the held-out rows are learnt too


def test_time_budget_stops_cleanly_and_resumes(tmp_path):
    cfg = cfg_for(tmp_path, max_steps=10**6, max_minutes=0.5 / 60, eval_every=0, log_every=1000)
    result = train(tiny_lm(), ToyLMTask(), cfg)
    assert result.stop_reason == "time_budget" and 0 < result.steps < 10**6
    state = json.loads((tmp_path / "run/checkpoints/latest/state.json").read_text())
    assert state["step"] == result.steps
    more = train(tiny_lm(), ToyLMTask(), cfg_for(tmp_path, max_steps=result.steps + 3), resume=True)
    assert more.steps == result.steps + 3


def test_epochs_limit_and_epoch_end_evaluation(tmp_path):
    result = train(tiny_lm(), ToyLMTask(n_tokens=400), cfg_for(tmp_path, max_steps=0, max_epochs=2, eval_every=0))
    assert result.stop_reason == "max_epochs" and result.steps == 24 and result.epochs == 2
    evals = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in evals if r["kind"] == "eval"] == [12, 24]


def test_user_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="nothing to resume"):
        train(tiny_lm(), ToyLMTask(), cfg_for(tmp_path), resume=True)
    train(tiny_lm(), ToyLMTask(), cfg_for(tmp_path, max_steps=2))
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train(tiny_lm(), ToyLMTask(), cfg_for(tmp_path, max_steps=2))
    with pytest.raises(ValueError, match="needs an end"):
        train(tiny_lm(), ToyLMTask(), cfg_for(tmp_path, "x", max_steps=0))
    with pytest.raises(ValueError, match="unknown optimizer"):
        train(tiny_lm(), ToyLMTask(), cfg_for(tmp_path, "y", optimizer="lbfgs"))
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        train(tiny_lm(), ToyLMTask(), cfg_for(tmp_path, "z", precision="fp16"))

    class NoMetric(ToyLMTask):
        def evaluate(self, model):
            return {"acc": 1.0}

    with pytest.raises(ValueError, match="without task.metric 'val_loss'"):
        train(tiny_lm(), NoMetric(), cfg_for(tmp_path, "w", max_steps=2))


def test_bf16_autocast_on_cpu_trains(tmp_path):
    """precision=bf16 is plumbed through by effect, not only recorded: the output layer runs in
    bfloat16 in every training step and evaluation (fp32: float32), and the same seeded run
    gives different (close) losses than fp32. Fails if the trainer ignored the setting."""
    def run(precision):
        model = tiny_lm()
        seen = {"train": set(), "eval": set()}
        model.head.register_forward_hook(
            lambda mod, inputs, out: seen["train" if mod.training else "eval"].add(out.dtype))
        result = train(model, ToyLMTask(), cfg_for(tmp_path, precision, max_steps=8, eval_every=4, log_every=1,
                                                   precision=precision))
        return result, seen, [loss for _, loss in train_losses(tmp_path / precision)]

    bf16, seen16, losses16 = run("bf16")
    fp32, seen32, losses32 = run("fp32")
    conf = json.loads((tmp_path / "bf16/config.json").read_text())
    assert conf["train"]["precision"] == "bf16" and math.isfinite(bf16.best_metric)
    assert seen16 == {"train": {torch.bfloat16}, "eval": {torch.bfloat16}}, seen16
    assert seen32 == {"train": {torch.float32}, "eval": {torch.float32}}, seen32
    assert len(losses16) == len(losses32) == 8
    assert losses16 != losses32 and bf16.best_metric != fp32.best_metric  # bf16 rounding shows in the loss
    assert max(abs(a - b) for a, b in zip(losses16, losses32)) < 0.05  # ... and only rounding


def test_detach_state_and_seed_everything():
    w = torch.ones(3, requires_grad=True)
    carry = ((w * 2, w * 3), [w * 4], {"h": w * 5}, None, 7)
    out = detach_state(carry)
    assert isinstance(out[0], tuple) and isinstance(out[1], list) and out[3] is None and out[4] == 7
    assert not out[0][0].requires_grad and not out[2]["h"].requires_grad
    assert torch.equal(out[0][1], torch.full((3,), 3.0))
    seed_everything(5)
    a = (torch.rand(2), __import__("random").random(), __import__("numpy").random.rand())
    seed_everything(5)
    b = (torch.rand(2), __import__("random").random(), __import__("numpy").random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_lr_schedules():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cos = LRSchedule(opt, "cosine", 1.0, warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
    assert [cos.lr_at(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert cos.lr_at(9) == pytest.approx(0.55) and cos.lr_at(14) == pytest.approx(0.1)
    assert cos.apply(9) == opt.param_groups[0]["lr"]
    plat = LRSchedule(opt, "plateau", 1.0, mode="min", factor=0.5, patience=2)
    for metric in (3.0, 2.0, 2.5, 2.1):  # two evaluations without improvement -> halve
        plat.observe(metric)
    assert plat.lr_at(100) == 0.5
    plat.observe(1.0)
    plat.observe(float("nan"))
    assert plat.lr_at(100) == 0.5 and plat.state_dict()["best"] == 1.0
    with pytest.raises(ValueError, match="cosine needs max_steps"):
        LRSchedule(opt, "cosine", 1.0)


def test_resuming_a_finished_run_takes_no_extra_step(tmp_path):
    model = tiny_lm()
    train(model, ToyLMTask(), cfg_for(tmp_path, max_steps=6))
    before = params_of(model)
    again = tiny_lm(seed=4)
    result = train(again, ToyLMTask(), cfg_for(tmp_path, max_steps=6), resume=True)
    assert result.steps == 6 and result.stop_reason == "max_steps"
    assert_same_params(before, params_of(again), tol=0.0)


def test_progress_bar_and_quiet_log_lines(tmp_path, capsys):
    train(tiny_lm(), ToyLMTask(), cfg_for(tmp_path, "bar", max_steps=8, quiet=False))
    err = capsys.readouterr().err
    assert "loss=" in err and "items_s=" in err and "8/8" in err  # tqdm bar with its postfix
    train(tiny_lm(), ToyLMTask(), cfg_for(tmp_path, "quiet", max_steps=8, quiet=True))
    out, err = capsys.readouterr()
    assert "step       8 | epoch   0 | loss" in out and "items/s" in out and "8/8" not in err


def test_deferred_nonfinite_check_as_on_gpu(tmp_path, monkeypatch):
    # On GPU the NaN check stays on the device and is read at log / checkpoint steps only.
    from rnnkit.core.train import trainer as trainer_mod

    class Deferred(trainer_mod._LossMeter):
        def __init__(self, device, immediate, *a):
            super().__init__(device, False, *a)

    monkeypatch.setattr(trainer_mod, "_LossMeter", Deferred)
    cfg = cfg_for(tmp_path, max_steps=40, log_every=4, checkpoint_every=6, eval_every=0)
    with pytest.raises(NonFiniteLossError, match=r"at step 7\b"):
        train(tiny_lm(), ToyLMTask(nan_at_step=7), cfg)
    assert json.loads((tmp_path / "run/checkpoints/latest/state.json").read_text())["step"] == 6  # not 8


def test_device_and_precision_choice(monkeypatch):
    from rnnkit.core.train import device as dev

    cpu = torch.device("cpu")
    assert dev.resolve_device("cpu") == cpu
    assert dev.resolve_precision("auto", cpu) == "fp32"
    assert dev.make_grad_scaler(cpu, "bf16") is None and dev.make_grad_scaler(cpu, "fp32") is None
    with dev.autocast(cpu, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown precision"):
        dev.resolve_precision("fp8", cpu)
    with pytest.raises(ValueError, match="unknown device"):
        dev.resolve_device("tpu:0")
    # the CUDA branches, with CUDA faked: auto picks bf16 where supported, else fp16 (+ GradScaler)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.resolve_device("auto").type == "cuda"
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dev.resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert dev.resolve_precision("auto", cuda) == "fp16"
    with pytest.raises(ValueError, match="does not support bf16"):
        dev.resolve_precision("bf16", cuda)


def test_oneDNN_switch_is_scoped_and_training_picks_the_measured_setting(tmp_path):
    from rnnkit.core.train import device as dev

    torch.backends.mkldnn.enabled = not dev.MKLDNN_FOR_TRAINING
    train(tiny_lm(), ToyLMTask(), cfg_for(tmp_path, max_steps=2))
    assert torch.backends.mkldnn.enabled == dev.MKLDNN_FOR_TRAINING
    with dev.mkldnn(False):
        assert not torch.backends.mkldnn.enabled
    assert torch.backends.mkldnn.enabled == dev.MKLDNN_FOR_TRAINING


def test_cpu_budget_stops_and_the_cosine_ends_with_it(tmp_path):
    cfg = cfg_for(tmp_path, max_steps=0, max_cpu_seconds=0.6, schedule="cosine", min_lr_ratio=0.1,
                  eval_every=0, log_every=5, checkpoint_every=0)
    result = train(tiny_lm(), ToyLMTask(n_tokens=100_000), cfg)
    assert result.stop_reason == "cpu_budget" and result.steps > 10
    lrs = [r["lr"] for r in map(json.loads, (tmp_path / "run/metrics.jsonl").read_text().splitlines())
           if r.get("kind") == "train"]
    # the decay follows the CPU clock: it starts near lr and ends near min_lr_ratio * lr
    assert lrs[0] > 0.9 * cfg.lr and lrs[-1] < 0.2 * cfg.lr
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    state = json.loads((tmp_path / "run/checkpoints/latest/state.json").read_text())
    assert 0.6 <= state["cpu"] < 5.0  # spent, recorded for a resume


def test_cpu_budget_is_the_whole_runs_across_resumes(tmp_path):
    first = train(tiny_lm(), ToyLMTask(n_tokens=100_000), cfg_for(tmp_path, max_steps=0, max_cpu_seconds=0.3,
                                                                    eval_every=0, log_every=5))
    assert first.stop_reason == "cpu_budget"
    again = train(tiny_lm(), ToyLMTask(n_tokens=100_000),
                  cfg_for(tmp_path, max_steps=0, max_cpu_seconds=0.3, eval_every=0, log_every=5), resume=True)
    assert again.stop_reason == "cpu_budget" and again.steps <= first.steps + 5  # nothing left to spend


def test_a_checkpoint_without_cpu_state_resumes(tmp_path):
    result = train(tiny_lm(), ToyLMTask(), cfg_for(tmp_path, max_steps=8, checkpoint_every=4))
    path = tmp_path / "run/checkpoints/latest/state.json"
    state = json.loads(path.read_text())
    del state["cpu"]  # written before max_cpu_seconds existed
    path.write_text(json.dumps(state))
    more = train(tiny_lm(), ToyLMTask(), cfg_for(tmp_path, max_steps=12), resume=True)
    assert more.steps == 12 and result.steps == 8


def test_cosine_needs_a_length():
    from rnnkit.core.train.schedules import LRSchedule

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match="max_cpu_seconds"):
        LRSchedule(opt, "cosine", 1.0, total_steps=None)
    assert LRSchedule(opt, "cosine", 1.0, total_steps=None, clock=True).lr_at(5, progress=1.0) == 0.0
