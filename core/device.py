"""Device and numeric precision, decided once before training (nanoGPT's ``ctx``).

``resolve_device("auto")`` picks CUDA > MPS > CPU. ``resolve_precision`` turns "auto" into
bf16 on CUDA when the GPU supports it, else fp16 (the only case that needs a GradScaler),
and fp32 on CPU / MPS. ``autocast(device, precision)`` is the context the forward pass
runs in; fp32 is a ``nullcontext``.
"""

from __future__ import annotations

import contextlib
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


def configure_backends(device: torch.device) -> None:
    """Backend switches decided once per run: the measured-faster oneDNN setting on CPU,
    TF32 matmuls on CUDA (fp32 runs on Ampere+ get tensor cores; nanoGPT does the same)."""
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        torch.backends.mkldnn.enabled = MKLDNN_FOR_TRAINING
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
    return info
