"""Check a ``model.safetensors`` against the model its ``config.json`` describes, before either
is allocated.

A tampered or mismatched config.json (``hidden_size=12000``) used to build the full model
first (gigabytes, seconds) and only then learn from safetensors that the shapes differ. Here the
model is built on torch's ``meta`` device (shapes only, no memory), and its tensors are compared
with the file's header: the 8-byte length, then JSON ``{name: {dtype, shape, data_offsets}}``.
Offsets must lie inside the file, so once this passes, loading allocates about the file's size.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
             "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}


class WeightsError(ValueError):
    """A weights file that is truncated, malformed, or does not fit its config (one clear line)."""


def read_header(path: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{tensor name: (dtype, shape)}`` of a safetensors file, every entry checked against the file size."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 2 or n > min(MAX_HEADER_BYTES, size - 8):
                raise WeightsError(f"{path}: not a safetensors file, or truncated ({size} bytes)")
            raw = f.read(n)
    except OSError as e:
        raise WeightsError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise WeightsError(f"{path}: the safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: the safetensors header is not a JSON object")
    data_bytes = size - 8 - n
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            ok = (dtype in _ITEMSIZE and isinstance(shape, list) and len(shape) <= 8
                  and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
                  and all(isinstance(o, int) and not isinstance(o, bool) for o in (start, end)))
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise WeightsError(f"{path}: tensor {name[:60]!r} has a malformed header entry")
        if not 0 <= start <= end <= data_bytes or end - start != math.prod(shape) * _ITEMSIZE[dtype]:
            raise WeightsError(f"{path}: tensor {name[:60]!r} lies outside the file (truncated or altered)")
        out[name] = (dtype, tuple(shape))
    return out


def check_fits(kind: str, config: dict[str, Any], weights: str | os.PathLike) -> None:
    """WeightsError unless ``weights`` holds exactly the tensors (names, shapes) of the model
    ``kind`` / ``config`` builds. Builds that model on the meta device: no memory, milliseconds."""
    import torch

    from rnnkit.core.config import check_dims
    from rnnkit.core.models.registry import build_model

    if not isinstance(config, dict):
        raise WeightsError(f"{weights}: the model config is not a JSON object")
    try:
        check_dims(config, "model config")
    except ValueError as e:
        raise WeightsError(str(e)) from None
    header = read_header(weights)
    with torch.device("meta"):
        try:
            model = build_model(kind, config)
        except (ValueError, TypeError, RuntimeError) as e:
            raise WeightsError(f"model config cannot build a {kind} model: {str(e).splitlines()[0][:200]}") from None
    # Tied weights are one tensor under two names; safetensors stores one of them.
    groups: dict[int, list[tuple[str, torch.Tensor]]] = {}
    for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        groups.setdefault(id(t), []).append((name, t))
    names = set()
    for members in groups.values():
        names.update(n for n, _ in members)
        saved = [(n, t) for n, t in members if n in header]
        if not saved:
            raise WeightsError(f"{weights}: lacks tensor {members[0][0]!r} that the config's model has "
                               "(config.json and model.safetensors do not belong together)")
        for n, t in saved:
            if header[n][1] != tuple(t.shape):
                raise WeightsError(f"{weights}: tensor {n!r} has shape {list(header[n][1])}, the config's model "
                                   f"needs {list(t.shape)} (config.json and model.safetensors do not belong together)")
    extra = sorted(set(header) - names)
    if extra:
        raise WeightsError(f"{weights}: holds tensor(s) {[e[:60] for e in extra[:3]]} the config's model does not have")
