"""Random, valid inputs for any rnnkit graph, built from the graph's own signature (torch-free).

Used by the parity check (ONNX Runtime vs PyTorch) and by ``rnnkit verify`` on a device
without torch. Token ids stay inside their vocabulary, lengths inside the time axis,
state is random and *non-zero* (a zero state hides a wrong state wiring).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from rnnkit.edge import names as N

_DTYPES = {"tensor(int64)": np.int64, "tensor(float)": np.float32, "tensor(bool)": np.bool_,
           "tensor(int32)": np.int32}


def vocab_bound(name: str, config: Mapping[str, Any]) -> int:
    """Exclusive upper bound of the ids fed to the integer input ``name``."""
    keys = {N.TOKENS: ("vocab_size", "tgt_vocab_size"), N.PREV: ("tgt_vocab_size", "vocab_size"),
            N.SRC: ("src_vocab_size", "vocab_size"), N.CHARS: ("char_vocab_size",)}.get(name, ())
    for key in keys:
        if int(config.get(key, 0) or 0) > 0:
            return int(config[key])
    raise ValueError(f"no vocabulary size for input {name!r} in the model config (looked for {keys})")


def random_feeds(inputs: list[Any], config: Mapping[str, Any], batch: int, time: int,
                 seed: int = 0, src_time: int | None = None, word_len: int = 6) -> dict[str, np.ndarray]:
    """``{name: array}`` for ``session.get_inputs()`` (objects with ``name``, ``type``, ``shape``).

    Symbolic dims resolve by name (batch, time, src_time, word_len); every other dim must be static.
    Row 0 of ``lengths``/``src_len`` is full length, the others random in [1, full].
    """
    rng = np.random.default_rng(seed)
    src_time = src_time or time
    dims = {N.BATCH: batch, N.TIME: time, N.SRC_TIME: src_time, N.WORD_LEN: word_len}
    feeds: dict[str, np.ndarray] = {}

    def lengths(full: int) -> np.ndarray:
        out = rng.integers(1, full + 1, size=batch).astype(np.int64)
        out[0] = full
        return out

    # lengths first: src_mask must agree with src_len.
    for arg in sorted(inputs, key=lambda a: a.name not in (N.LENGTHS, N.SRC_LEN)):
        shape = []
        for d in arg.shape:
            if isinstance(d, int):
                shape.append(d)
            elif d in dims:
                shape.append(dims[d])
            else:
                raise ValueError(f"input {arg.name!r} has an unknown symbolic dim {d!r}")
        dtype = _DTYPES.get(arg.type)
        if dtype is None:
            raise ValueError(f"input {arg.name!r} has unsupported type {arg.type}")
        if arg.name == N.LENGTHS:
            feeds[arg.name] = lengths(time)
        elif arg.name == N.SRC_LEN:
            feeds[arg.name] = lengths(src_time)
        elif arg.name == N.SRC_MASK:
            src_len = feeds.get(N.SRC_LEN, np.full(batch, src_time, dtype=np.int64))
            feeds[arg.name] = np.arange(shape[1])[None, :] < src_len[:, None]
        elif N.role_of(arg.name) == "len":  # filled KV-cache slots: a whole number in [0, window]
            feeds[arg.name] = rng.integers(0, int(config["window"]) + 1, size=shape).astype(np.float32)
        elif dtype == np.float32:
            scale = 0.5 if N.is_state_input(arg.name) else 1.0
            feeds[arg.name] = (scale * rng.standard_normal(shape)).astype(np.float32)
        elif dtype in (np.int64, np.int32):
            feeds[arg.name] = rng.integers(0, vocab_bound(arg.name, config), size=shape).astype(dtype)
        else:
            feeds[arg.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
    return feeds


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    if a.dtype == np.bool_:
        return float(np.count_nonzero(a != b))
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
