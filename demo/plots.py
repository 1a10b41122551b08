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


def _margins(fig: Figure, left: float, bottom: float, right: float, top: float) -> None:
    """Fixed margins in inches. Cheaper than layout="constrained", which re-measures every label
    several times and doubled the render time of these figures."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=min(left / w, 0.45), right=1 - min(right / w, 0.3),
                        bottom=min(bottom / h, 0.6), top=1 - min(top / h, 0.3))


def attention_figure(attn: np.ndarray, src: Sequence[str], tgt: Sequence[str]) -> Figure:
    """Heatmap of attention (T target tokens, S source tokens): rows are what was written,
    columns what it looked at; darker is more attention."""
    T, S = attn.shape
    assert (T, S) == (len(tgt), len(src)), (attn.shape, len(tgt), len(src))
    xs, ys = range(0, S, max(1, -(-S // 50))), range(0, T, max(1, -(-T // 40)))  # labels stay legible
    xl, yl = [_short(src[i]) for i in xs], [_short(tgt[i]) for i in ys]
    left = 0.75 + 0.075 * max(map(len, yl), default=1)
    bottom = 0.8 + 0.065 * max(map(len, xl), default=1)
    fig = Figure(figsize=(min(max(left + 0.8 + 0.32 * S, 6.0), 13), min(max(bottom + 0.6 + 0.3 * T, 3.5), 11)),
                 dpi=90)
    _margins(fig, left, bottom, 0.3, 0.45)
    ax = fig.add_subplot()
    ax.imshow(attn, cmap="Blues", vmin=0.0, vmax=max(float(attn.max()), 1e-6), aspect="auto",
              interpolation="nearest")
    ax.set_xticks(list(xs), xl, rotation=60, ha="right", rotation_mode="anchor", fontsize=9)
    ax.set_yticks(list(ys), yl, fontsize=9)
    ax.tick_params(length=0)
    ax.set_title("Attention (darker = more)", fontsize=10, color=INK, loc="left")
    ax.set_xlabel("English (source)", color=INK, fontsize=9)
    ax.set_ylabel("German (output)", color=INK, fontsize=9)
    return fig


def running_score_figure(pieces: Sequence[str], running: Sequence[float]) -> Figure:
    """The score after each token as a line in [-1, 1], green above zero and red below."""
    n = len(running)
    assert n == len(pieces), (n, len(pieces))
    x = np.arange(n)
    y = np.asarray(running, dtype=float)
    step = max(1, -(-n // 40))  # at most ~40 labels, or they overlap
    labels = [_short(p, 10) for p in pieces[::step]]
    bottom = 0.45 + 0.06 * max(map(len, labels), default=1)
    fig = Figure(figsize=(min(max(3 + 0.38 * n, 8.0), 13), 2.4 + bottom), dpi=90)
    _margins(fig, 0.8, bottom, 0.2, 0.4)
    ax = fig.add_subplot()
    ax.axhline(0, color="#9ca3af", lw=1)
    ax.fill_between(x, y, 0, where=y >= 0, color=POS, alpha=0.18, interpolate=True)
    ax.fill_between(x, y, 0, where=y < 0, color=NEG, alpha=0.18, interpolate=True)
    ax.plot(x, y, color=INK, lw=1.6, marker="o", ms=3.5)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlim(-0.5, max(n - 0.5, 0.5))
    ax.set_xticks(x[::step], labels, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_ylabel("score so far", color=INK)
    ax.set_yticks([-1, -0.5, 0, 0.5, 1])
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title("How the score turns, token by token", fontsize=10, color=INK, loc="left")
    return fig
