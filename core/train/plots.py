"""``loss.png`` from ``metrics.jsonl`` records: training loss and validation curves by step."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

from rnnkit.core.atomic import atomic_write


def plot_losses(records: Iterable[dict], path: str | Path, metric: str | None = None) -> Path | None:
    """Train loss (log records) and val loss / ``metric`` (eval records) against step.

    Returns the path written, or None when there is nothing to plot yet.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    records = list(records)
    train = [(r["step"], r["loss"]) for r in records if r.get("kind") == "train" and _finite(r.get("loss"))]
    evals = [r for r in records if r.get("kind") == "eval"]
    val_key = "val_loss" if any("val_loss" in r for r in evals) else metric
    val = [(r["step"], r[val_key]) for r in evals if val_key and _finite(r.get(val_key))]
    if not train and not val:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", lw=1)
    if val:
        ax.plot(*zip(*val), "o-", label=val_key.replace("_", " "), lw=1.5, ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return Path(path)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
