"""Random number generators: seed them all, capture and restore them all (no pickle).

Exact resume needs every generator a training step may touch: Python's ``random``,
NumPy's legacy global generator, torch's CPU generator (dropout on CPU) and each CUDA
device's generator (dropout on GPU). The state splits into JSON-able numbers and
tensors, so a checkpoint stores it as JSON + safetensors.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import Tensor


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def get_rng_state() -> tuple[dict[str, Any], dict[str, Tensor]]:
    """All generator states as (JSON-able dict, {name: tensor})."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    meta = {
        "python": {"version": version, "gauss_next": gauss},
        "numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
    }
    tensors = {
        "rng.python": torch.tensor(internal, dtype=torch.int64),  # 625 uint32 words
        "rng.numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.uint32).astype(np.int64)),
        "rng.torch_cpu": torch.get_rng_state(),
    }
    for i in range(meta["cuda_devices"]):
        tensors[f"rng.cuda.{i}"] = torch.cuda.get_rng_state(i)
    return meta, tensors


def set_rng_state(meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
    """Inverse of ``get_rng_state``. CUDA states are restored for the devices present in both."""
    py = meta["python"]
    random.setstate((py["version"], tuple(tensors["rng.python"].tolist()), py["gauss_next"]))
    npm = meta["numpy"]
    keys = tensors["rng.numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state((npm["kind"], keys, npm["pos"], npm["has_gauss"], npm["cached_gaussian"]))
    torch.set_rng_state(tensors["rng.torch_cpu"].to(torch.uint8).cpu())
    if torch.cuda.is_available():
        for i in range(min(meta.get("cuda_devices", 0), torch.cuda.device_count())):
            torch.cuda.set_rng_state(tensors[f"rng.cuda.{i}"].to(torch.uint8).cpu(), i)


class preserved_rng:
    """Context manager: whatever runs inside (evaluation, sampling) leaves no trace on the
    generators, so adding or moving an evaluation never changes the training run."""

    def __enter__(self):
        self._state = get_rng_state()
        return self

    def __exit__(self, *exc):
        set_rng_state(*self._state)
        return False
