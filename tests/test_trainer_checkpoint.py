"""Checkpoints: round trips without pickle, the atomic directory swap, SIGKILL at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.core.train import checkpoint as ck
from rnnkit.core.train.checkpoint import CheckpointError, find_latest, load_checkpoint, save_checkpoint
from rnnkit.core.train.rng import get_rng_state, set_rng_state
from rnnkit.core.train.schedules import build_optimizer
from rnnkit.core.train.types import TrainConfig
from test_trainer_toys import tiny_lm

torch.set_num_threads(1)
TOYS = Path(__file__).with_name("test_trainer_toys.py")


def stepped_optimizer(model, name):
    opt = {"sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
           "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3),
           "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-3, momentum=0.5)}[name](model.parameters())
    for _ in range(2):
        logits, _ = model(torch.randint(0, 16, (2, 5)))
        logits.sum().backward()
        opt.step()
        opt.zero_grad()
    return opt


@pytest.mark.parametrize("name", ["sgd", "adamw", "rmsprop"])
def test_checkpoint_round_trip(tmp_path, name):
    model = tiny_lm()
    opt = stepped_optimizer(model, name)
    carry = (torch.randn(2, 3, 16), {"c": [torch.randn(1, 3, 16), None], "n": 4})
    save_checkpoint(tmp_path, model, opt, {"step": 7, "note": "x"}, carry)
    assert not list(tmp_path.glob(".tmp-*"))  # nothing left behind
    names = sorted(p.name for p in (tmp_path / "latest").iterdir())
    assert names == ["model.safetensors", "state.json", "state.safetensors"]

    other = tiny_lm(seed=1)
    other_opt = torch.optim.__dict__[{"sgd": "SGD", "adamw": "AdamW", "rmsprop": "RMSprop"}[name]](
        other.parameters(), lr=0.5)
    got = load_checkpoint(tmp_path, other, other_opt)
    assert got.state["step"] == 7 and got.state["note"] == "x"
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    assert other.head.weight.data_ptr() == other.embed.weight.data_ptr()  # still tied
    sa, sb = opt.state_dict(), other_opt.state_dict()
    assert sb["param_groups"][0]["lr"] == sa["param_groups"][0]["lr"] != 0.5
    for idx, slots in sa["state"].items():
        for k, v in slots.items():
            assert torch.equal(v, sb["state"][idx][k]) if torch.is_tensor(v) else v == sb["state"][idx][k]
    assert torch.equal(got.carry[0], carry[0]) and got.carry[1]["n"] == 4
    assert torch.equal(got.carry[1]["c"][0], carry[1]["c"][0]) and got.carry[1]["c"][1] is None


def test_rng_state_round_trip():
    meta, tensors = get_rng_state()
    json.dumps(meta)  # the non-tensor part is plain JSON
    first = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(meta, tensors)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_checkpoint_rejects_a_different_model(tmp_path):
    model = tiny_lm()
    save_checkpoint(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.1), {"step": 1})
    from rnnkit.core.models.kinds import LanguageModel, LMConfig

    bigger = LanguageModel(LMConfig(vocab_size=16, embed_size=12, hidden_size=32, num_layers=2))
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_checkpoint(tmp_path, bigger)
    with pytest.raises(CheckpointError, match="optimizer is SGD"):
        load_checkpoint(tmp_path, tiny_lm(), torch.optim.Adam(tiny_lm().parameters()))
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        load_checkpoint(tmp_path / "nowhere", model)


def test_swap_without_renameat2_and_recovery_mid_swap(tmp_path, monkeypatch):
    model = tiny_lm()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monkeypatch.setattr(ck, "_exchange", lambda a, b: False)  # force the two-rename fallback
    for step in (1, 2):
        save_checkpoint(tmp_path, model, opt, {"step": step})
    assert json.loads((tmp_path / "latest/state.json").read_text())["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]
    # a crash between "latest -> .prev" and "tmp -> latest": .prev is complete and comes back
    os.replace(tmp_path / "latest", tmp_path / ".prev")
    (tmp_path / ".tmp-dead").mkdir()  # and a half-written new one, never used
    assert find_latest(tmp_path) == tmp_path / "latest"
    assert json.loads((tmp_path / "latest/state.json").read_text())["step"] == 2
    save_checkpoint(tmp_path, model, opt, {"step": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]  # stale tmp cleaned up


def test_a_write_that_dies_midway_leaves_latest_as_it_was(tmp_path, monkeypatch):
    model = tiny_lm()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    save_checkpoint(tmp_path, model, opt, {"step": 1})
    before = {p.name: p.read_bytes() for p in (tmp_path / "latest").iterdir()}

    def dies(path, obj):
        raise OSError("disk full")  # state.json, the last file, never gets written

    monkeypatch.setattr(ck, "atomic_write_json", dies)
    with torch.no_grad():
        model.head.bias.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, model, opt, {"step": 2})
    assert {p.name: p.read_bytes() for p in (tmp_path / "latest").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


def test_incomplete_directory_is_never_used(tmp_path):
    model = tiny_lm()
    save_checkpoint(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.1), {"step": 1})
    (tmp_path / "latest/state.json").unlink()
    assert find_latest(tmp_path) is None


def _latest_step(root):
    latest = find_latest(root)
    return None if latest is None else json.loads((latest / "state.json").read_text())["step"]


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path):
    """Kill the trainer (checkpointing every step) at random moments; every time the latest
    checkpoint must load, and the resumed run must end where an uninterrupted one does.

    Each kill waits (with a deadline, polling) until the run has checkpointed past a target step
    drawn well before the end, then lands a few random milliseconds later, mostly inside a
    checkpoint write. So all three kills land on any machine: a fast one cannot finish the run
    first, a slow one only waits longer, and a stuck trainer fails at the deadline."""
    run = tmp_path / "killed"
    max_steps = 300
    args = ["--max-steps", str(max_steps), "--eval-every", "30"]
    every_step = ["--checkpoint-every", "1"]  # most of the time is spent inside a checkpoint write
    rnd = random.Random(1234)
    targets = [rnd.randint(10, 50), rnd.randint(80, 120), rnd.randint(150, 190)]  # >= 100 steps left at each
    seen = []
    for target in targets:
        resume = ["--resume"] if find_latest(run / "checkpoints") else []
        proc = subprocess.Popen([sys.executable, str(TOYS), str(run), *args, *every_step, *resume],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 180  # interpreter + torch start, then steps, on a loaded machine
            while (_latest_step(run / "checkpoints") or 0) < target:
                assert proc.poll() is None, ("the run ended before the kill", proc.returncode,
                                             proc.stderr.read().decode()[-2000:])
                assert time.monotonic() < deadline, f"no checkpoint at step {target} within 180 s"
                time.sleep(0.01)
            time.sleep(rnd.uniform(0.0, 0.03))
            assert proc.poll() is None, "the run ended before the kill"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr.read().decode()[-2000:])
        step = _latest_step(run / "checkpoints")
        assert step is not None and target <= step < max_steps, (target, step)
        seen.append(step)
        model, cfg = tiny_lm(), TrainConfig()  # the toy script's optimizer, built as the trainer builds it
        got = load_checkpoint(run / "checkpoints", model,
                              build_optimizer(model, cfg.optimizer, 3e-3, cfg.weight_decay, cfg.momentum))
        assert got.state["step"] == step
    assert len(seen) == 3 and seen == sorted(seen), seen
    done = subprocess.run([sys.executable, str(TOYS), str(run), *args, "--resume"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"RESULT steps={max_steps}" in done.stdout
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest"]

    from test_trainer_toys import main as toy_main

    assert toy_main([str(tmp_path / "straight"), *args]) == 0  # in-process: one interpreter start less
    from safetensors.torch import load_file

    a = load_file(str(run / "model_last/model.safetensors"))
    b = load_file(str(tmp_path / "straight/model_last/model.safetensors"))
    for k in a:
        assert (a[k] - b[k]).abs().max().item() <= 1e-7, k
