"""DDP under torchrun (2 CPU processes, gloo): sharded data, averaged gradients, rank 0 writes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TOYS = Path(__file__).with_name("test_trainer_toys.py")
ARGS = ["--max-steps", "20", "--dropout", "0", "--eval-every", "10"]


def torchrun(*args, timeout=180):
    exe = Path(sys.executable).with_name("torchrun")
    exe = str(exe) if exe.exists() else shutil.which("torchrun")
    assert exe, "torchrun not found next to the interpreter"
    done = subprocess.run([exe, "--standalone", "--nproc_per_node=2", str(TOYS), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-3000:]
    return done.stdout


def max_diff(dir_a, dir_b):
    from safetensors.torch import load_file

    a, b = load_file(str(dir_a / "model.safetensors")), load_file(str(dir_b / "model.safetensors"))
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("head", ["softmax", "adaptive"])
def test_torchrun_two_ranks_match_one_process_on_the_full_batch(tmp_path, head):
    # adaptive: a tail no target of a rank's half batch reaches must still join the gradient all-reduce
    args = ARGS + (["--adaptive", "4,10"] if head == "adaptive" else [])
    out = torchrun(tmp_path / "ddp", *args)
    assert out.count("RESULT steps=20") == 2  # both ranks ran, and agree
    assert "rank=0/2 rows=2" in out and "rank=1/2 rows=2" in out  # each took half the rows
    single = subprocess.run([sys.executable, str(TOYS), str(tmp_path / "one"), *args], capture_output=True,
                            text=True, timeout=120)
    assert single.returncode == 0, single.stderr[-3000:]
    assert "rank=0/1 rows=4" in single.stdout
    # Without dropout the averaged gradient of the two half batches is the full-batch
    # gradient, so the weights match a single process up to summation order.
    # Adaptive: the rarest cluster's tail sees a target now and then, so its gradient is often a
    # rounding-sized number that Adam's normalisation scales up to a real step (its bias differs by
    # ~2e-4 after 20 steps, the rest by ~1e-5): a looser bound, the same check.
    assert max_diff(tmp_path / "ddp/model_last", tmp_path / "one/model_last") < (1e-5 if head == "softmax" else 1e-3)
    # only rank 0 wrote the log: each step once; world size recorded
    records = [json.loads(x) for x in (tmp_path / "ddp/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [5, 10, 15, 20]
    assert json.loads((tmp_path / "ddp/config.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_torchrun_pause_and_resume_equals_straight(tmp_path):
    # With dropout each rank has its own RNG stream and its own carried LSTM state; both are
    # checkpointed per rank (rank1.*), so pausing at step 7 and resuming changes nothing.
    args = ["--max-steps", "20", "--eval-every", "10", "--dropout", "0.3"]
    torchrun(tmp_path / "straight", *args)
    torchrun(tmp_path / "paused", *args, "--pause-at", "7")
    assert max_diff(tmp_path / "straight/model_last", tmp_path / "paused/model_last") <= 1e-7
    assert (tmp_path / "paused/checkpoints/latest/rank1.safetensors").is_file()
