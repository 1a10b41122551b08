"""Recurrent vs Transformer, side by side: one prompt through two language-model bundles, and each
one-token step's latency as the context grows (the demo's Compare tab; plain functions, the UI only wires).

A recurrent bundle's step reads a state of fixed, small size: its cost stays flat. A Transformer
bundle's state is its KV cache of ``window`` positions (core/models/transformer.py), allocated in full
from the first token, so its cost is its window's from the start, and higher the longer the window
(bench/rnn_vs_transformer.py measures 16 to 4,096 positions).
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from rnnkit.edge.npsample import decode_continuation, generate, start_ids


def timed_continuation(engine, prompt: str, length: int, seed: Optional[int] = 0, temperature: float = 0.8,
                       top_k: int = 40, top_p: float = 0.95) -> tuple[str, list[tuple[int, float]]]:
    """``engine`` a ``TextGenerator``: (prompt + continuation, [(tokens read before the step, ms)] of
    every one-token step). The prompt's own call (all its tokens at once) is not listed."""
    ids = start_ids(engine.tok, prompt)
    times: list[tuple[int, float]] = []
    read = 0

    def step(tokens: np.ndarray, state):
        nonlocal read
        t0 = time.perf_counter()
        out = engine.step.step_unchecked(tokens, state)
        if tokens.shape[1] == 1:
            times.append((read, (time.perf_counter() - t0) * 1e3))
        read += tokens.shape[1]
        return out

    new = list(generate(step, ids, length, temperature, top_k, top_p, seed, state=engine.step.init_state(1)))
    return prompt + decode_continuation(engine.tok, ids, new), times


def state_summary(engine) -> str:
    """One line: the architecture (graph metadata ``cell``) and the bytes of state a step carries."""
    state = engine.step.init_state(1)
    cell = engine.step.meta.cell or "?"
    window = engine.step.props.get("window", "")
    what = f"{cell}, KV cache of {window} positions" if window else cell
    return f"{what}: {sum(s.nbytes for s in state):,} bytes of state"


def latency_table(rows: dict[str, list[tuple[int, float]]], every: int = 1):
    """{label: [(context, ms)]} -> a DataFrame (context, ms per token, model) for a line plot; each point
    the median of ``every`` consecutive steps (a shared machine's single steps are noisy)."""
    import pandas as pd

    out = []
    for label, pts in rows.items():
        for i in range(0, len(pts), every):
            chunk = pts[i:i + every]
            out.append({"tokens of context": chunk[0][0], "ms per token": float(np.median([m for _, m in chunk])),
                        "model": label})
    return pd.DataFrame(out, columns=["tokens of context", "ms per token", "model"])
