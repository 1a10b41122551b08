"""bench/train_throughput.py must keep running (a benchmark nobody runs rots)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "train_throughput.py"


@pytest.mark.slow
def test_throughput_bench_quick_mode_runs(capsys):
    runpy.run_path(str(BENCH), run_name="bench")["main"](["--quick"])
    out = capsys.readouterr().out
    for line in ("bare PyTorch loop", "rnnkit train()", "overhead", "bf16 autocast", "train fwd+bwd B=1",
                 "1-token step B=1"):
        assert line in out, line
