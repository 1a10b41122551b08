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


@pytest.mark.slow
def test_torchrun_two_ranks_match_one_process_on_the_full_batch(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = shutil.which("torchrun")
    assert torchrun, "torchrun not found next to the interpreter"
    ddp = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", str(TOYS), str(tmp_path / "ddp"),
                          *ARGS], capture_output=True, text=True, timeout=180)
    assert ddp.returncode == 0, ddp.stdout[-1500:] + ddp.stderr[-3000:]
    assert ddp.stdout.count("RESULT steps=20") == 2  # both ranks ran, and agree
    assert "rank=0/2 rows=2" in ddp.stdout and "rank=1/2 rows=2" in ddp.stdout  # each took half the rows
    single = subprocess.run([sys.executable, str(TOYS), str(tmp_path / "one"), *ARGS], capture_output=True,
                            text=True, timeout=120)
    assert single.returncode == 0, single.stderr[-3000:]
    assert "rank=0/1 rows=4" in single.stdout

    # Each rank trains on 2 of the 4 rows; without dropout the averaged gradient is the
    # full-batch gradient, so the weights match a single process up to summation order.
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "ddp/model_last/model.safetensors"))
    b = load_file(str(tmp_path / "one/model_last/model.safetensors"))
    for k in a:
        assert (a[k] - b[k]).abs().max().item() < 1e-5, k
    # only rank 0 wrote the log: each step once; world size recorded
    records = [json.loads(x) for x in (tmp_path / "ddp/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [5, 10, 15, 20]
    assert json.loads((tmp_path / "ddp/config.json").read_text())["world_size"] == 2
