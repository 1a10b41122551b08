"""What the demo draws, as data and HTML the browser renders: no figure is rendered on the server.

Measured under load with matplotlib figures (py-spy on the demo serving 20 users): rendering
and PNG-encoding the heatmap and the score plot took ~40% of the server's CPU, more than all
the models together. An HTML heatmap and a client-side line plot (``gr.LinePlot``) cost
microseconds to build, stay sharp at any zoom, and show exact values on hover.
"""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np


def _short(piece: str, n: int = 14) -> str:
    piece = piece.strip() or "␣"
    return piece if len(piece) <= n else piece[: n - 1] + "…"


# Above this many cells the heatmap drops its per-cell hover text and uses ten shade classes
# (~20 bytes a cell instead of ~130): a long sentence stays a few hundred kB, not megabytes.
DETAILED_CELLS = 1500
SHADES = 10


def attention_html(attn: np.ndarray, src: Sequence[str], tgt: Sequence[str]) -> str:
    """Heatmap of attention (T target tokens, S source tokens) as an HTML table: a row per German
    token, a column per English token, darker blue = more attention (scaled to the largest weight)."""
    T, S = attn.shape
    assert (T, S) == (len(tgt), len(src)), (attn.shape, len(tgt), len(src))
    top = max(float(attn.max()), 1e-9) if attn.size else 1.0
    esc = html.escape
    head = "".join(f"<th class='src' title='{esc(s)}'><span>{esc(_short(s))}</span></th>" for s in src)
    rows = []
    detailed = T * S <= DETAILED_CELLS
    for t, word in enumerate(tgt):
        if detailed:
            cells = "".join(
                f"<td style='background:rgba(29,78,216,{attn[t, s] / top:.2f})' "
                f"title='{esc(word.strip())} ← {esc(src[s].strip())}: {attn[t, s]:.2f}'></td>" for s in range(S))
        else:
            level = np.minimum((attn[t] / top * SHADES).astype(int), SHADES - 1)
            cells = "".join(f"<td class='a{v}'></td>" for v in level.tolist())
        rows.append(f"<tr><th class='tgt' title='{esc(word)}'>{esc(_short(word))}</th>{cells}</tr>")
    hint = "hover a cell for its weight" if detailed else "shades in tenths of the largest weight"
    return (f"<div class='attn'><div class='attn-caption'>Attention: which English token (column) each "
            f"German token (row) looked at — darker is more; {hint}</div>"
            f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def shade_css() -> str:
    """CSS for the compact heatmap's shade classes a0..a9."""
    return "\n".join(f".attn td.a{i} {{background: rgba(29,78,216,{(i + 0.5) / SHADES:.2f});}}"
                     for i in range(SHADES))


def score_colour(score: float) -> str:
    """Background for a token: red at -1, white at 0, green at +1."""
    a = min(abs(score), 1.0) * 0.55
    return f"rgba(22, 163, 74, {a:.2f})" if score >= 0 else f"rgba(220, 38, 38, {a:.2f})"


def tokens_html(pieces: Sequence[str], running: Sequence[float]) -> str:
    """The review as read, each token coloured by the score after it (hover shows the number)."""
    spans = "".join(f"<span class='tok' style='background:{score_colour(s)}' title='{s:+.2f}'>"
                    f"{html.escape(p).replace(' ', '&nbsp;')}</span>" for p, s in zip(pieces, running))
    return f"<div class='tokens'>{spans}</div>"


def running_table(pieces: Sequence[str], running: Sequence[float]):
    """The running score as a table for ``gr.LinePlot``: token ("3 dull": position and text, unique
    so that a repeated word keeps its own point), score, position (1..T)."""
    import pandas as pd  # a gradio dependency; only the wiring needs it

    assert len(pieces) == len(running), (len(pieces), len(running))
    labels = [f"{i} {_short(p, 12)}" for i, p in enumerate(pieces, 1)]
    return pd.DataFrame({"token": labels, "score": np.round(running, 4), "position": np.arange(1, len(pieces) + 1)})


def forecast_table(history: Sequence[float], forecast: Sequence[float], max_history: int = 600):
    """History then forecast as a table for ``gr.LinePlot`` (step, value, part): the forecast line
    starts at the last observed value so that the two join. Long histories show their recent end
    (the plot stays readable and the message small)."""
    import pandas as pd

    n = len(history)
    first = max(0, n - max_history)
    steps = list(range(first + 1, n + 1)) + list(range(n, n + len(forecast) + 1))
    values = list(history[first:]) + [history[-1], *forecast]
    parts = ["history"] * (n - first) + ["forecast"] * (len(forecast) + 1)
    v = np.asarray(values, dtype=float)
    # rounded for a small message, where rounding cannot overflow (np.round(1e308, 4) is inf)
    v = np.where(np.abs(v) < 1e300, np.round(v, 4), v)
    return pd.DataFrame({"step": steps, "value": v, "part": parts})
