"""Device and numeric precision, decided once before training (nanoGPT's ``ctx``).

``resolve_device("auto")`` picks CUDA > MPS > CPU. ``resolve_precision`` turns "auto" into
bf16 on CUDA when the GPU supports it, else fp16 (the only case that needs a GradScaler),
and fp32 on CPU / MPS. ``autocast(device, precision)`` is the context the forward pass
runs in; fp32 is a ``nullcontext``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from functools import lru_cache
from typing import ContextManager, Iterator, Optional

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda, else mps, else cpu; an explicit name must be usable here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but this torch has no usable CUDA GPU; use device=cpu")
    if device.type == "mps" and not _mps_available():
        raise ValueError(f"device {name!r} asked for, but MPS is not available here; use device=cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device type {device.type!r} is not supported; use auto, cpu, cuda or mps")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> bf16 / fp16 on CUDA (bf16 when supported), fp32 elsewhere; checks explicit choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("precision fp16 needs a GPU (CPU fp16 autocast is slow and lossy); use bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("this GPU does not support bf16; use precision fp16 or auto")
    return precision


def autocast(device: torch.device, precision: str) -> ContextManager:
    """The context the forward pass and loss run in; fp32 needs none."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def make_grad_scaler(device: torch.device, precision: str) -> Optional["torch.amp.GradScaler"]:
    """A GradScaler for fp16 only: bf16 has fp32's exponent range and does not underflow."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


# oneDNN (torch.backends.mkldnn) for the fused LSTM, measured with bench/train_throughput.py
# (torch 2.13 CPU, 1 thread, Xeon with avx512, 2-layer LSTM 256, bptt 32, CPU ms per call,
# median of 3 alternated rounds, 2026-11-22):
#   train fwd+bwd  B=1 : on  9.1 ms | off 31.5 ms  -> on is 3.5x faster
#   train fwd+bwd  B=32: on 81.7 ms | off 104.0 ms -> on is 1.27x faster
#   1-token step   B=1 : on  1.21 ms | off 0.45 ms -> OFF is 2.7x faster (inference, no grad)
# So training keeps oneDNN on; single-token streaming inference in torch is faster with it
# off (``mkldnn(False)`` below). The ONNX runtime path is not affected either way.
MKLDNN_FOR_TRAINING = True
MKLDNN_FOR_STEPPING = False


@contextlib.contextmanager
def mkldnn(enabled: bool) -> Iterator[None]:
    """Temporarily switch oneDNN, e.g. ``with mkldnn(MKLDNN_FOR_STEPPING):`` around 1-token sampling."""
    keep = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = keep


# glibc malloc serves every block above M_MMAP_THRESHOLD with its own mmap, and that threshold
# adapts only up to 32 MiB (DEFAULT_MMAP_THRESHOLD_MAX). A word LM's logits and their gradient are
# bigger (batch 32 x bptt 35 x vocab 10k x 4 B = 45 MiB), so each training step mmaps and munmaps
# them afresh and the kernel zero-fills every page on first touch: measured on ptb-lm's model
# (2x256, fp32, one thread) 46k minor page faults and 102 ms system time per step against 363 ms
# user (22 % of the CPU time in the kernel; bf16 autocast adds its casts on top). Served from the
# heap instead (M_MMAP_MAX 0) and kept there (M_TRIM_THRESHOLD 256 MiB): 0 faults, 0.2 ms system
# time per step, 3,733 vs 2,614 tokens per CPU second; peak RSS 781 vs 629 MB.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
HEAP_TRIM_BYTES = 256 << 20
MALLOC_TUNE_ENV = "RNNKIT_MALLOC_TUNE"  # "0" keeps glibc's defaults
_malloc_tuned: Optional[bool] = None


def tune_cpu_allocator() -> bool:
    """Serve large CPU tensors from the glibc heap instead of one mmap each (see above).

    Process-wide and idempotent; True when applied. A no-op (False) off Linux/glibc, under
    another allocator that lacks ``mallopt``, or with ``RNNKIT_MALLOC_TUNE=0``."""
    global _malloc_tuned
    if _malloc_tuned is not None:
        return _malloc_tuned
    _malloc_tuned = False
    if os.environ.get(MALLOC_TUNE_ENV, "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl's / jemalloc's mallopt differ or do nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _malloc_tuned = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, HEAP_TRIM_BYTES))
    return _malloc_tuned


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX). Without it, bf16 autocast
    converts to fp32 around every op: measured 2.2-2.5x slower than fp32 on an AVX-512 Xeon."""
    cap = ""
    try:
        cap = str(torch.backends.cpu.get_cpu_capability()).lower()
    except Exception:  # pragma: no cover - older torch
        pass
    if "amx" in cap:
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def precision_warning(device: torch.device, precision: str) -> Optional[str]:
    """One line for the run's log when the chosen precision is known to be slow here, else None."""
    if device.type == "cpu" and precision == "bf16" and not cpu_has_native_bf16():
        return ("warning: precision bf16 on a CPU without native bf16 (no avx512_bf16 / amx_bf16): "
                "autocast converts around every op, ~2x slower than fp32; use precision fp32 (or auto)")
    return None


@lru_cache(maxsize=1)
def onednn_runs_bf16_lstm() -> bool:
    """Whether oneDNN can build a bf16 LSTM on this CPU. Without AVX-512 (an AVX2-only x86) it
    cannot: "could not create a primitive descriptor for the LSTM forward propagation primitive"."""
    enabled = torch.backends.mkldnn.enabled
    try:
        torch.backends.mkldnn.enabled = True
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = torch.nn.LSTM(4, 4, batch_first=True)(torch.zeros(2, 3, 4))
            out.float().sum().backward()
        return True
    except RuntimeError:
        return False
    finally:
        torch.backends.mkldnn.enabled = enabled


def configure_backends(device: torch.device, precision: str = "fp32") -> None:
    """Backend switches decided once per run: the measured-faster oneDNN setting and the heap
    allocator setting (``tune_cpu_allocator``) on CPU, TF32 matmuls on CUDA (fp32 runs on Ampere+
    get tensor cores; nanoGPT does the same). bf16 on a CPU whose oneDNN has no bf16 LSTM runs
    PyTorch's own kernels (oneDNN off) instead of failing at the first step."""
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        torch.backends.mkldnn.enabled = MKLDNN_FOR_TRAINING and not (
            precision == "bf16" and not onednn_runs_bf16_lstm())
    if device.type == "cpu":
        tune_cpu_allocator()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def describe(device: torch.device, precision: str) -> dict:
    """What the run directory's config.json records about the hardware."""
    info = {"device": str(device), "precision": precision, "torch": torch.__version__,
            "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    if device.type == "cpu":
        info["mkldnn"] = bool(torch.backends.mkldnn.enabled)
        info["malloc_heap"] = bool(_malloc_tuned)
        info["native_bf16"] = cpu_has_native_bf16()
    return info
