"""The demo's two figures: the attention heatmap and the running sentiment score.

Built with ``matplotlib.figure.Figure`` directly, never pyplot: pyplot keeps global state
that is not thread-safe, and the demo serves several users at once.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

INK = "#1f2937"
POS, NEG = "#16a34a", "#dc2626"


def _short(piece: str, n: int = 14) -> str:
    piece = piece.strip() or "␣"
    return piece if len(piece) <= n else piece[: n - 1] + "…"


def attention_figure(attn: np.ndarray, src: Sequence[str], tgt: Sequence[str]) -> Figure:
    """Heatmap of attention (T target tokens, S source tokens): rows are what was written,
    columns what it looked at."""
    T, S = attn.shape
    assert (T, S) == (len(tgt), len(src)), (attn.shape, len(tgt), len(src))
    fig = Figure(figsize=(min(max(4.0 + 0.42 * S, 6.5), 14), min(max(2.2 + 0.36 * T, 3.5), 10)), dpi=100,
                 layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(attn, cmap="Blues", vmin=0.0, vmax=max(float(attn.max()), 1e-6), aspect="auto")
    xs, ys = range(0, S, max(1, S // 50)), range(0, T, max(1, T // 40))  # labels stay legible
    ax.set_xticks(list(xs), [_short(src[i]) for i in xs], rotation=60, ha="right", fontsize=9)
    ax.set_yticks(list(ys), [_short(tgt[i]) for i in ys], fontsize=9)
    ax.set_title("Attention: which English tokens each German token looked at", fontsize=11, color=INK, loc="left")
    ax.set_xlabel("English (source)", color=INK)
    ax.set_ylabel("German (output)", color=INK)
    ax.tick_params(length=0)
    fig.colorbar(im, ax=ax, shrink=0.8, label="attention weight")
    return fig


def running_score_figure(pieces: Sequence[str], running: Sequence[float]) -> Figure:
    """The score after each token as a line in [-1, 1], green above zero and red below."""
    n = len(running)
    assert n == len(pieces), (n, len(pieces))
    x = np.arange(n)
    y = np.asarray(running, dtype=float)
    fig = Figure(figsize=(min(3 + 0.38 * n, 14), 3.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.axhline(0, color="#9ca3af", lw=1)
    ax.fill_between(x, y, 0, where=y >= 0, color=POS, alpha=0.18, interpolate=True)
    ax.fill_between(x, y, 0, where=y < 0, color=NEG, alpha=0.18, interpolate=True)
    ax.plot(x, y, color=INK, lw=1.6, marker="o", ms=3.5)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlim(-0.5, max(n - 0.5, 0.5))
    step = max(1, n // 40)  # at most ~40 labels, or they overlap
    ax.set_xticks(x[::step], [_short(p, 10) for p in pieces[::step]], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("score so far", color=INK)
    ax.set_title("How the score turns, token by token", fontsize=11, color=INK, loc="left")
    ax.set_yticks([-1, -0.5, 0, 0.5, 1])
    ax.spines[["top", "right"]].set_visible(False)
    return fig
