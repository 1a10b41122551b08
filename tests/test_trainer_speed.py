"""Trainer speed on CPU (issue 13): no mmap + page faults per large tensor, and a warning when
bf16 is chosen on a CPU that computes it only by conversion."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from rnnkit.core.train import device as dev
from rnnkit.core.train.trainer import TrainConfig, train
from test_trainer_toys import ToyLMTask, tiny_lm

torch.set_num_threads(1)


def _minflt() -> int:
    # this thread's faults only: a thread left running by an earlier test (a demo server, a thread
    # pool) must not count; with one torch thread the tensors below are filled on this one
    return resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)).ru_minflt


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_large_tensors_come_from_the_heap_without_page_faults(tmp_path):
    """A 48 MiB tensor (a word LM's logits: above glibc's 32 MiB mmap ceiling) allocated and freed
    again and again: with the trainer's allocator setting it is reused from the heap (hardly any
    minor page faults); glibc's default would mmap it each time and fault in all 12k pages."""
    train(tiny_lm(), ToyLMTask(), TrainConfig(run_dir=str(tmp_path / "r"), device="cpu", max_steps=1,
                                              checkpoint_every=0, quiet=True))
    assert dev.tune_cpu_allocator() is True  # applied by train() on CPU (glibc), idempotent
    n = 48 << 20 >> 2
    torch.ones(n).sum()  # the heap grows once
    before = _minflt()
    for _ in range(10):
        torch.ones(n).sum()
    faults = _minflt() - before
    assert faults < 10 * (n * 4 // 4096) // 20, faults  # default glibc: ~123k; here ~0


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
