"""Trainer speed on CPU (issue 13): no mmap + page faults per large tensor, and a warning when
bf16 is chosen on a CPU that computes it only by conversion."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from rnnkit.core.train import device as dev
from rnnkit.core.train.trainer import TrainConfig, train
from test_trainer_toys import ToyLMTask, tiny_lm

torch.set_num_threads(1)


_FAULTS = """
import resource, sys, torch
from rnnkit.core.train import device as dev
torch.set_num_threads(1)
tuned = dev.tune_cpu_allocator() if sys.argv[1] == "tuned" else False
n = 48 << 20 >> 2
for _ in range(3):  # the first allocations grow the heap (a training run's first steps)
    torch.ones(n).sum()
before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
for _ in range(10):
    torch.ones(n).sum()
print(tuned, resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_large_tensors_come_from_the_heap_with_fewer_page_faults(tmp_path):
    """A 48 MiB tensor (a word LM's logits: above glibc's 32 MiB mmap ceiling) allocated and freed
    again and again. glibc's default mmaps it each time and faults in all 12k pages every time;
    with the trainer's allocator setting it comes from the heap. How many faults remain depends on
    where the heap could grow (measured: 0 to half of the default's, varying run to run), so each
    is measured in fresh processes, three times, and the medians are compared."""
    train(tiny_lm(), ToyLMTask(), TrainConfig(run_dir=str(tmp_path / "r"), device="cpu", max_steps=1,
                                              checkpoint_every=0, quiet=True))
    assert dev.tune_cpu_allocator() is True  # applied by train() on CPU (glibc), idempotent
    pages = (48 << 20) // 4096
    faults: dict[str, list[int]] = {"tuned": [], "default": []}
    for mode in ("tuned", "default") * 3:
        done = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        tuned, count = done.stdout.split()
        assert (tuned == "True") == (mode == "tuned"), done.stdout
        faults[mode].append(int(count))
    median = {k: sorted(v)[1] for k, v in faults.items()}
    assert median["default"] > 9 * pages, faults  # every allocation faults all its pages in
    assert median["tuned"] < 0.6 * median["default"], faults


def test_bf16_on_cpu_without_native_bf16_warns_once_at_start(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    cfg = dict(device="cpu", max_steps=2, checkpoint_every=0, quiet=True, log_every=1)
    train(tiny_lm(), ToyLMTask(), TrainConfig(run_dir=str(tmp_path / "bf16"), precision="bf16", **cfg))
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if "without native bf16" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning:") and "fp32" in warnings[0]
    train(tiny_lm(), ToyLMTask(), TrainConfig(run_dir=str(tmp_path / "fp32"), precision="fp32", **cfg))
    assert "without native bf16" not in capsys.readouterr().out
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)  # AMX / avx512_bf16: no warning
    assert dev.precision_warning(torch.device("cpu"), "bf16") is None
    assert dev.precision_warning(torch.device("cpu"), "fp32") is None


def test_native_bf16_detection_reads_the_cpu_flags():
    flags = open("/proc/cpuinfo").read() if sys.platform.startswith("linux") else ""
    if flags:
        has = " avx512_bf16" in flags or " amx_bf16" in flags
        assert dev.cpu_has_native_bf16() == has or "amx" in str(torch.backends.cpu.get_cpu_capability()).lower()


def test_bf16_on_a_cpu_whose_onednn_has_no_bf16_lstm_trains_with_onednn_off(monkeypatch):
    """An AVX2-only x86 (no AVX-512): oneDNN cannot build a bf16 LSTM, and precision=bf16 failed at
    the first step. The run then uses PyTorch's own kernels; fp32 runs and able CPUs keep oneDNN."""
    cpu = torch.device("cpu")
    before = torch.backends.mkldnn.enabled
    try:
        monkeypatch.setattr(dev, "onednn_runs_bf16_lstm", lambda: False)
        dev.configure_backends(cpu, "bf16")
        assert not torch.backends.mkldnn.enabled
        dev.configure_backends(cpu, "fp32")
        assert torch.backends.mkldnn.enabled == dev.MKLDNN_FOR_TRAINING
        monkeypatch.setattr(dev, "onednn_runs_bf16_lstm", lambda: True)
        dev.configure_backends(cpu, "bf16")
        assert torch.backends.mkldnn.enabled == dev.MKLDNN_FOR_TRAINING
    finally:
        torch.backends.mkldnn.enabled = before
    assert isinstance(dev.onednn_runs_bf16_lstm(), bool)  # the real probe answers, whatever this CPU is
